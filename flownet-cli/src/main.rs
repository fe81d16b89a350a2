fn main() {
    std::process::exit(flownet_cli::run(std::env::args_os()));
}
