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
