//! Entry point: parse the command line and dispatch. All logic lives in the library.

fn main() -> std::process::ExitCode {
    rampart::cli::run()
}
