//! `admin-provisioner` command line: a thin shell over [`admin_provisioner::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    admin_provisioner::cli::main().await
}
