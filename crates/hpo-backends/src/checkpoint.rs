//! Per-trial checkpoint folders, shared by the backends that keep them.

use std::path::Path;

/// Creates the trial's checkpoint folder, first copying the files of another trial's folder
/// into it if asked (PBT's exploit step).
pub(crate) fn prepare_checkpoint_dir(dir: &Path, copy_from: Option<&Path>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let Some(from) = copy_from.filter(|f| f.is_dir()) else { return Ok(()) };
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?.path();
        if path.is_file()
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, dir.join(name)).map_err(|e| format!("copying checkpoint {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Readies the checkpoint folder of a trial's first launch: a folder already there was left
/// by a launch that a run which crashed made but had not journaled yet (the thread backend's
/// entries are journaled in batches), so it is not this trial's and goes. Then, if asked, the
/// folder is made with a copy of another trial's checkpoint (PBT's exploit step).
pub(crate) fn first_checkpoint_dir(dir: &Path, copy_from: Option<&Path>) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove the stale {}: {e}", dir.display()))?;
    }
    match copy_from {
        Some(from) => prepare_checkpoint_dir(dir, Some(from)),
        None => Ok(()),
    }
}

/// Removes what a trial left empty: its checkpoint folder, empty logs, then its own folder.
/// Folders that hold anything stay, so a large run leaves one folder per trial that wrote
/// something, not one per trial.
pub fn tidy_trial_dir(trial_dir: &Path) {
    for log in ["stdout.log", "stderr.log"] {
        let path = trial_dir.join(log);
        if path.metadata().is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
    }
    let _ = std::fs::remove_dir(trial_dir.join("checkpoints")); // fails unless empty
    let _ = std::fs::remove_dir(trial_dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_launch_gets_a_fresh_folder_with_only_the_donors_files() {
        let root = tempfile::tempdir().expect("temp dir");
        let (dir, donor) = (root.path().join("7/checkpoints"), root.path().join("3/checkpoints"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("stale.pt"), "a lost launch's").expect("write");
        first_checkpoint_dir(&dir, None).expect("fresh folder");
        assert!(!dir.exists(), "the stale folder is gone; the trial makes its own when it saves");

        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("stale.pt"), "a lost launch's").expect("write");
        std::fs::create_dir_all(&donor).expect("mkdir");
        std::fs::write(donor.join("model.pt"), "the donor's").expect("write");
        first_checkpoint_dir(&dir, Some(&donor)).expect("copied folder");
        let mut files: Vec<_> = std::fs::read_dir(&dir).expect("read").map(|e| e.expect("entry").file_name()).collect();
        files.sort();
        assert_eq!(files, ["model.pt"]);
    }
}
