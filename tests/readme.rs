//! The README is the crate documentation; these checks keep its reference sections honest.

use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The IAM policy names exactly the IAM-authorised Cognito actions the AWS adapter calls.
#[test]
fn iam_policy_names_exactly_the_actions_the_adapter_calls() {
    let text = readme();
    let start = text.find("## Running against AWS").expect("section");
    let block = &text[start..];
    let json_start = block.find("```json\n").unwrap() + 8;
    let json_end = json_start + block[json_start..].find("```").unwrap();
    let policy: serde_json::Value = serde_json::from_str(&block[json_start..json_end]).unwrap();
    let mut in_policy = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        assert!(
            st["Resource"].as_str().unwrap().starts_with("arn:aws:cognito-idp:"),
            "scoped to the pool ARN"
        );
        for a in st["Action"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            assert!(!a.contains('*'), "no wildcard actions: {a}");
            in_policy.insert(a.trim_start_matches("cognito-idp:").to_string());
        }
    }

    let mut called = BTreeSet::new();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/cognito/src");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "testing.rs" {
            continue; // the moto harness creates pools; not part of the product
        }
        let code = std::fs::read_to_string(&path).unwrap();
        for op in [
            "admin_create_user",
            "admin_get_user",
            "admin_delete_user",
            "admin_disable_user",
            "admin_enable_user",
            "admin_update_user_attributes",
            "list_users",
            "describe_user_pool",
            "describe_user_pool_client",
            "initiate_auth",
            "admin_initiate_auth",
            "respond_to_auth_challenge",
            "admin_respond_to_auth_challenge",
            "admin_reset_user_password",
            "admin_user_global_sign_out",
            "admin_set_user_mfa_preference",
            "create_group",
            "get_group",
            "admin_add_user_to_group",
            "admin_remove_user_from_group",
            "admin_list_groups_for_user",
        ] {
            if code.contains(&format!(".{op}()")) {
                let pascal: String = op
                    .split('_')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next().unwrap().to_ascii_uppercase().to_string() + c.as_str()
                    })
                    .collect();
                // Cognito spells the acronym in capitals.
                called.insert(pascal.replace("Mfa", "MFA"));
            }
        }
    }
    // Public, unauthenticated APIs: no IAM permission exists for them.
    called.remove("InitiateAuth");
    called.remove("RespondToAuthChallenge");
    assert_eq!(in_policy, called);
}

/// The two set-up commands stay at the top, and the test command is what CI runs.
#[test]
fn readme_starts_with_the_two_setup_commands() {
    let text = readme();
    let first_block = text.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let commands: Vec<&str> = first_block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].starts_with("cargo run -- serve"));
    assert!(commands[1].starts_with("scripts/test.sh"));
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(ci.contains("scripts/test.sh"));
}

/// Every environment variable the configuration reads is documented in the README's table.
#[test]
fn every_environment_variable_is_documented() {
    let text = readme();
    let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs")).unwrap();
    for part in config.split("env = \"").skip(1) {
        let var = part.split('"').next().unwrap();
        assert!(
            text.contains(&format!("| `{var}` |")),
            "{var} is not in the README's table"
        );
    }
}
