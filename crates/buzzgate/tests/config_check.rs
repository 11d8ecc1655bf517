//! `buzzgate config check` as an operator runs it: the real binary, a configuration file, and
//! the exit status and message they see (docs/operations.md, "Scope catalogue").

use std::process::Command;

fn check(file_text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!(
        "bgcheck-{}-{}",
        std::process::id(),
        file_text.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("buzzgate.toml");
    std::fs::write(&path, file_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_buzzgate"))
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .env_remove("BUZZGATE_CONFIG")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_good_catalogue_is_reported_scope_by_scope() {
    let (code, text) = check(
        "[[scopes]]\nname = \"generations\"\nbit = 40\nlabel = \"Generate images\"\nbuzz = \"capped\"\n\
         [[presets]]\nname = \"Studio\"\nlabel = \"Studio\"\nscopes = [\"generations\", \"UserRead\"]\n",
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration OK"), "{text}");
    assert!(
        text.contains(
            "scopes: 26 (always granted: UserRead; API keys manage the account with: UserWrite)"
        ),
        "{text}"
    );
    assert!(
        text.contains("bit 40  generations  Generate images  (spends Buzz within caps)"),
        "{text}"
    );
    assert!(
        text.contains("bit 15  AIServicesWrite  Generate, train & scan  (spends Buzz within caps)"),
        "{text}"
    );

    assert!(
        text.contains(
            "preset AIServices = UserRead AIServicesRead AIServicesWrite BuzzRead (114689)"
        ),
        "{text}"
    );
    assert!(
        text.contains("preset Studio = UserRead generations"),
        "{text}"
    );
}

#[test]
fn a_bad_catalogue_is_refused_with_status_2_and_the_fault_named() {
    let (code, text) = check("[[scopes]]\nname = \"profile\"\nbit = 0\nlabel = \"Profile\"\n");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("scopes `UserRead` and `profile` both use bit 0"),
        "{text}"
    );
    let (code, text) = check("[[presets]]\nname = \"ReadOnly\"\nlabel = \"x\"\nscopes = []\n");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("`ReadOnly` is declared twice"), "{text}");
}
