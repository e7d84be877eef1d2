//! Give the binaries an rpath to ./libtorch/lib so `netforecast-ml` runs without
//! LD_LIBRARY_PATH: absolute for this checkout, and relative to the binary for
//! target/{release,debug}/ and their deps/ directories. (`netforecast` itself
//! does not link libtorch; an rpath entry loads nothing.)
fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lib = std::path::Path::new(&root).join("../../libtorch/lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../../libtorch/lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../../../libtorch/lib");
    println!("cargo:rerun-if-changed=build.rs");
}
