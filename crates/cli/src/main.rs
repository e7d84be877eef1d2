//! `netforecast`: runs `extract` itself and hands replay, train and the daemon
//! to `netforecast-ml` (which links libtorch) by exec.

fn main() -> std::process::ExitCode {
    netforecast::main_with(None)
}
