//! Conditions on parameters' values: when a parameter is active
//! (`when = "optimizer == 'sgd'"`) and which combinations are forbidden
//! (`forbid = ["batch_size > 256 and learning_rate > 0.1"]`).
//!
//! A condition compares a parameter with literals (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in [...]`,
//! `not in [...]`) and joins comparisons with `and`, `or` and parentheses. A comparison on a
//! parameter that is not in the config (an inactive one) does not hold.

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::Domain;
use crate::symbol::Symbol;
use crate::value::{Config, Value};

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Atom(Atom),
}

/// One comparison of a parameter with literals.
#[derive(Clone, Debug, PartialEq)]
struct Atom {
    param: String,
    test: Test,
}

#[derive(Clone, Debug, PartialEq)]
enum Test {
    Compare(Op, Value),
    /// `in [...]`, or `not in [...]` when negated.
    In(Vec<Value>, bool),
}

impl Atom {
    /// Whether a value of the parameter passes.
    fn passes(&self, value: &Value) -> bool {
        match &self.test {
            Test::Compare(Op::Eq, x) => value.matches(x),
            Test::Compare(Op::Ne, x) => !value.matches(x),
            Test::Compare(op, x) => match (value.as_f64(), x.as_f64()) {
                (Some(v), Some(x)) => match op {
                    Op::Lt => v < x,
                    Op::Le => v <= x,
                    Op::Gt => v > x,
                    _ => v >= x,
                },
                _ => false,
            },
            Test::In(values, negated) => values.iter().any(|x| value.matches(x)) != *negated,
        }
    }

    /// Checks the comparison against the parameter's domain: the parameter exists, the
    /// operator suits it, and each literal is one of its values.
    fn check(&self, params: &BTreeMap<Symbol, Domain>) -> Result<(), String> {
        let p = &self.param;
        let domain = params.get(p.as_str()).ok_or_else(|| format!("`{p}` is not a parameter of the space"))?;
        let continuous = matches!(domain, Domain::Uniform { .. } | Domain::LogUniform { .. });
        let literals: Vec<&Value> = match &self.test {
            Test::Compare(_, x) => vec![x],
            Test::In(values, _) => values.iter().collect(),
        };
        match &self.test {
            Test::Compare(op @ (Op::Lt | Op::Le | Op::Gt | Op::Ge), x) => {
                let text_values = domain_values(domain).iter().any(|v| v.as_f64().is_none());
                if text_values {
                    return Err(format!(
                        "`{p}` takes values that are not numbers: compare it with == or in, not {}",
                        op.text()
                    ));
                }
                if x.as_f64().is_none() {
                    return Err(format!(
                        "`{p}` is a number: `{p} {} {}` compares it with something else",
                        op.text(),
                        literal(x)
                    ));
                }
                Ok(())
            }
            _ if continuous => Err(format!(
                "`{p}` is continuous ({}): equality would almost never hold; compare it with <, <=, > or >=",
                domain.to_json()
            )),
            _ => match literals.into_iter().find(|x| domain.validate(x).is_err()) {
                Some(x) => Err(format!("{} is not a value of `{p}` ({})", literal(x), domain.to_json())),
                None => Ok(()),
            },
        }
    }
}

/// A literal as written in a condition: texts quoted.
fn literal(value: &Value) -> String {
    match value {
        Value::Str(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// The values of a finite domain (none for a continuous one).
fn domain_values(domain: &Domain) -> Vec<Value> {
    match domain {
        Domain::Choice(values) | Domain::Ordinal(values) => values.clone(),
        Domain::Constant(value) => vec![value.clone()],
        _ => Vec::new(),
    }
}

/// A condition on parameters, as written and parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    text: String,
    expr: Expr,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Condition {
    /// Parses `optimizer == 'sgd' and (layers >= 2 or width in [64, 128])`.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let expr = parser.any()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(format!("`{text}`: unexpected {token} (conditions join comparisons with `and`, `or`)"));
        }
        Ok(Condition { text: text.trim().to_owned(), expr })
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the config meets the condition (a comparison on an absent parameter fails).
    pub fn holds(&self, config: &Config) -> bool {
        fn eval(expr: &Expr, config: &Config) -> bool {
            match expr {
                Expr::All(items) => items.iter().all(|e| eval(e, config)),
                Expr::Any(items) => items.iter().any(|e| eval(e, config)),
                Expr::Atom(atom) => config.get(&atom.param).is_some_and(|v| atom.passes(v)),
            }
        }
        eval(&self.expr, config)
    }

    /// The parameters it compares, each once, in the order written.
    pub fn params(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for atom in self.atoms() {
            if !out.contains(&atom.param.as_str()) {
                out.push(&atom.param);
            }
        }
        out
    }

    fn atoms(&self) -> Vec<&Atom> {
        fn walk<'a>(expr: &'a Expr, out: &mut Vec<&'a Atom>) {
            match expr {
                Expr::All(items) | Expr::Any(items) => items.iter().for_each(|e| walk(e, out)),
                Expr::Atom(atom) => out.push(atom),
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }

    /// Checks every comparison against the space's domains.
    pub(crate) fn check(&self, params: &BTreeMap<Symbol, Domain>) -> Result<(), String> {
        self.atoms().into_iter().try_for_each(|atom| atom.check(params))
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Name(String),
    Literal(Value),
    Op(Op),
    And,
    Or,
    In,
    Not,
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Name(name) => write!(f, "`{name}`"),
            Token::Literal(value) => write!(f, "`{}`", literal(value)),
            Token::Op(op) => write!(f, "`{}`", op.text()),
            Token::And => f.write_str("`and`"),
            Token::Or => f.write_str("`or`"),
            Token::In => f.write_str("`in`"),
            Token::Not => f.write_str("`not`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::OpenList => f.write_str("`[`"),
            Token::CloseList => f.write_str("`]`"),
            Token::Comma => f.write_str("`,`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let start = i;
        i += 1;
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            '[' => Token::OpenList,
            ']' => Token::CloseList,
            ',' => Token::Comma,
            '=' | '!' | '<' | '>' => {
                let two = next == Some('=');
                if two {
                    i += 1;
                }
                Token::Op(match (c, two) {
                    ('=', true) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => return Err(format!("`{text}`: `{c}` alone is not an operator (==, !=, <, <=, >, >=)")),
                })
            }
            '\'' | '"' => {
                let end = chars[i..]
                    .iter()
                    .position(|&d| d == c)
                    .ok_or_else(|| format!("`{text}`: a text that is not closed"))?;
                let s: String = chars[i..i + end].iter().collect();
                i += end + 1;
                Token::Literal(Value::Str(s.into()))
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "+-.".contains(chars[i])) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                Token::Literal(match (word.parse::<i64>(), word.parse::<f64>()) {
                    (Ok(n), _) => Value::Int(n),
                    (_, Ok(x)) if x.is_finite() => Value::Float(x),
                    _ => return Err(format!("`{text}`: `{word}` is not a number")),
                })
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || "_-.".contains(chars[i])) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "in" => Token::In,
                    "not" => Token::Not,
                    "true" => Token::Literal(Value::Bool(true)),
                    "false" => Token::Literal(Value::Bool(false)),
                    _ => Token::Name(word),
                }
            }
            other => return Err(format!("`{text}`: unexpected `{other}`")),
        };
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err("an empty condition: expected a comparison such as `optimizer == 'sgd'`".into());
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat(&mut self, token: &Token) -> bool {
        let found = self.tokens.get(self.at) == Some(token);
        if found {
            self.at += 1;
        }
        found
    }

    fn any(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.all()?];
        while self.eat(&Token::Or) {
            items.push(self.all()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Any(items) })
    }

    fn all(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.atom()?];
        while self.eat(&Token::And) {
            items.push(self.atom()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::All(items) })
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let param = match self.next() {
            Some(Token::Open) => {
                let inner = self.any()?;
                return if self.eat(&Token::Close) { Ok(inner) } else { Err("a `(` that is not closed".into()) };
            }
            Some(Token::Name(name)) => name,
            Some(other) => return Err(format!("expected a parameter's name, got {other}")),
            None => return Err("expected a comparison at the end".into()),
        };
        let test = match self.next() {
            Some(Token::Op(op)) => Test::Compare(op, self.literal(&param)?),
            Some(Token::In) => Test::In(self.list(&param)?, false),
            Some(Token::Not) if self.eat(&Token::In) => Test::In(self.list(&param)?, true),
            _ => return Err(format!("expected ==, !=, <, <=, >, >=, in or not in after `{param}`")),
        };
        Ok(Expr::Atom(Atom { param, test }))
    }

    fn literal(&mut self, param: &str) -> Result<Value, String> {
        match self.next() {
            Some(Token::Literal(value)) => Ok(value),
            Some(Token::Name(name)) => Err(format!(
                "`{param}` is compared with `{name}`: texts are quoted ('{name}'), and parameters compare with values only"
            )),
            _ => Err(format!("expected a value (a number, 'text', true or false) to compare `{param}` with")),
        }
    }

    fn list(&mut self, param: &str) -> Result<Vec<Value>, String> {
        if !self.eat(&Token::OpenList) {
            return Err(format!("`{param} in` needs a list: [a, b, ...]"));
        }
        let mut values = vec![self.literal(param)?];
        while self.eat(&Token::Comma) {
            if self.tokens.get(self.at) == Some(&Token::CloseList) {
                break;
            }
            values.push(self.literal(param)?);
        }
        if self.eat(&Token::CloseList) {
            Ok(values)
        } else {
            Err(format!("the list after `{param} in` is not closed with `]`"))
        }
    }
}

/// The values of one parameter a conjunction of comparisons still allows: by position for a
/// small finite domain, else an interval (which only the ordering comparisons narrow; it
/// errs toward "possible").
#[derive(Clone, Debug)]
enum Allowed {
    Positions(Vec<bool>),
    Interval { low: f64, high: f64, low_open: bool, high_open: bool },
}

/// Finite domains up to this size are analysed value by value.
const MAX_POSITIONS: usize = 4096;
/// Conjunctions an analysis keeps at most; beyond, it gives up and assumes "possible".
const MAX_CONJUNCTIONS: usize = 1024;

impl Allowed {
    fn of(domain: &Domain) -> Allowed {
        match domain.cardinality() {
            Some(n) if n <= MAX_POSITIONS => Allowed::Positions(vec![true; n]),
            _ => {
                let (low, high) = match *domain {
                    Domain::Uniform { low, high } | Domain::LogUniform { low, high } => (low, high),
                    Domain::RandInt { low, high } | Domain::LogRandInt { low, high } => (low as f64, high as f64),
                    _ => (f64::NEG_INFINITY, f64::INFINITY),
                };
                Allowed::Interval { low, high, low_open: false, high_open: false }
            }
        }
    }

    fn narrow(&mut self, atom: &Atom, domain: &Domain) {
        match self {
            Allowed::Positions(allowed) => {
                for (i, ok) in allowed.iter_mut().enumerate() {
                    *ok &= atom.passes(&domain.nth_value(i));
                }
            }
            Allowed::Interval { low, high, low_open, high_open } => {
                let Test::Compare(op, x) = &atom.test else { return };
                let Some(x) = x.as_f64() else { return };
                match op {
                    Op::Lt | Op::Le if x <= *high => {
                        (*high, *high_open) = (x, *op == Op::Lt || (x == *high && *high_open))
                    }
                    Op::Gt | Op::Ge if x >= *low => (*low, *low_open) = (x, *op == Op::Gt || (x == *low && *low_open)),
                    Op::Eq => {
                        let inside =
                            (x > *low || (x == *low && !*low_open)) && (x < *high || (x == *high && !*high_open));
                        (*low, *high) = if inside { (x, x) } else { (1.0, 0.0) };
                        (*low_open, *high_open) = (false, false);
                    }
                    _ => {}
                }
            }
        }
    }

    fn possible(&self) -> bool {
        match *self {
            Allowed::Positions(ref allowed) => allowed.iter().any(|&ok| ok),
            Allowed::Interval { low, high, low_open, high_open } => {
                low < high || (low == high && !low_open && !high_open)
            }
        }
    }
}

/// Which configs a condition can hold for, as a disjunction of conjunctions of comparisons
/// (each comparison also requiring its parameter to be active); `None` when too large to
/// tell.
pub(crate) struct Analysis<'a> {
    params: &'a BTreeMap<Symbol, Domain>,
    conditions: &'a BTreeMap<Symbol, Condition>,
    /// Per conditional parameter: when it is active, or `None` when too large to tell.
    active: BTreeMap<&'a str, Option<Vec<Vec<&'a Atom>>>>,
}

impl<'a> Analysis<'a> {
    /// `order` lists every parameter after those its condition compares.
    pub(crate) fn new(
        params: &'a BTreeMap<Symbol, Domain>,
        conditions: &'a BTreeMap<Symbol, Condition>,
        order: &'a [Symbol],
    ) -> Analysis<'a> {
        let mut analysis = Analysis { params, conditions, active: BTreeMap::new() };
        for name in order {
            if let Some(condition) = conditions.get(name) {
                let when = analysis.dnf(&condition.expr);
                analysis.active.insert(name, when);
            }
        }
        analysis
    }

    /// Whether the parameter can ever be active.
    pub(crate) fn can_be_active(&self, name: &str) -> bool {
        self.active.get(name).is_none_or(|when| when.as_ref().is_none_or(|w| !w.is_empty()))
    }

    /// Whether the condition can hold for some config.
    pub(crate) fn can_hold(&self, condition: &'a Condition) -> bool {
        self.dnf(&condition.expr).is_none_or(|when| !when.is_empty())
    }

    fn dnf(&self, expr: &'a Expr) -> Option<Vec<Vec<&'a Atom>>> {
        let out = match expr {
            Expr::Atom(atom) => {
                let when = match self.active.get(atom.param.as_str()) {
                    Some(when) => when.clone()?,
                    None if self.conditions.contains_key(atom.param.as_str()) => return None,
                    None => vec![Vec::new()],
                };
                when.into_iter()
                    .map(|mut conj| {
                        conj.push(atom);
                        conj
                    })
                    .collect()
            }
            Expr::Any(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(self.dnf(item)?);
                }
                out
            }
            Expr::All(items) => {
                let mut out = vec![Vec::new()];
                for item in items {
                    let alternatives = self.dnf(item)?;
                    let mut product = Vec::new();
                    for conj in &out {
                        for alt in &alternatives {
                            product.push([conj.clone(), alt.clone()].concat());
                        }
                    }
                    out = product.into_iter().filter(|c| self.consistent(c)).collect();
                    if out.len() > MAX_CONJUNCTIONS {
                        return None;
                    }
                }
                out
            }
        };
        let out: Vec<Vec<&Atom>> = out.into_iter().filter(|c| self.consistent(c)).collect();
        (out.len() <= MAX_CONJUNCTIONS).then_some(out)
    }

    /// Whether some config passes every comparison of a conjunction.
    fn consistent(&self, conj: &[&Atom]) -> bool {
        let mut allowed: BTreeMap<&str, Allowed> = BTreeMap::new();
        for atom in conj {
            let Some(domain) = self.params.get(atom.param.as_str()) else { return true };
            allowed.entry(&atom.param).or_insert_with(|| Allowed::of(domain)).narrow(atom, domain);
        }
        allowed.values().all(Allowed::possible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, Value)]) -> Config {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn conditions_parse_and_hold_as_written() {
        let c = Condition::parse("optimizer == 'sgd' and (layers >= 2 or width in [64, 128])").unwrap();
        assert_eq!(c.params(), ["optimizer", "layers", "width"]);
        let sgd = |layers: i64, width: i64| {
            config(&[
                ("optimizer", Value::Str("sgd".into())),
                ("layers", Value::Int(layers)),
                ("width", Value::Int(width)),
            ])
        };
        assert!(c.holds(&sgd(2, 16)));
        assert!(c.holds(&sgd(1, 64)));
        assert!(!c.holds(&sgd(1, 16)));
        // A comparison on an absent parameter fails, even `!=` and `not in`.
        assert!(!Condition::parse("momentum != 0.5").unwrap().holds(&Config::new()));
        assert!(!Condition::parse("act not in ['relu']").unwrap().holds(&Config::new()));
        assert!(
            Condition::parse("act not in ['relu', \"tanh\",]")
                .unwrap()
                .holds(&config(&[("act", Value::Str("gelu".into()))]))
        );
        assert!(
            Condition::parse("x < -1.5e-3 or flag == true").unwrap().holds(&config(&[("flag", Value::Bool(true))]))
        );
    }

    #[test]
    fn bad_conditions_say_what_was_expected() {
        let err = |text: &str| Condition::parse(text).unwrap_err();
        assert!(err("").contains("empty condition"));
        assert!(err("optimizer = 'sgd'").contains("`=` alone is not an operator"));
        assert!(err("optimizer == sgd").contains("texts are quoted ('sgd')"));
        assert!(err("optimizer 'sgd'").contains("expected ==, !=, <, <=, >, >=, in or not in after `optimizer`"));
        assert!(err("(a == 1").contains("not closed"));
        assert!(err("a in [1, 2").contains("not closed with `]`"));
        assert!(err("a == 1 b == 2").contains("unexpected `b`"));
        assert!(err("a == 'x").contains("not closed"));
    }
}
