//! Per-trial checkpoint folders, shared by the backends that keep them.

use std::path::Path;

/// Creates the trial's checkpoint folder, first copying the files of another trial's folder
/// into it if asked (PBT's exploit step).
pub fn prepare_checkpoint_dir(dir: &Path, copy_from: Option<&Path>) -> Result<(), String> {
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
