fn main() {
    napi_build::setup();

    // `mmsg`: the datagram I/O of src/driver/batch.rs through sendmmsg and
    // recvmmsg, with segmentation offload: on Linux and Android, unless the
    // `portable-io` feature asks for the one-datagram-per-call path that
    // every other system builds (so that it is compiled and tested here too).
    println!("cargo::rustc-check-cfg=cfg(mmsg)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE_IO").is_some();
    if (os == "linux" || os == "android") && !portable {
        println!("cargo::rustc-cfg=mmsg");
    }
}
