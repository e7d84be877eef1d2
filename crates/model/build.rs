//! Give every binary an rpath to ./libtorch/lib so it runs without
//! LD_LIBRARY_PATH: absolute for this checkout, and relative to the binary for
//! target/{release,debug}/ and their deps/ directories.
fn main() {
    // libtorch sits at the workspace root, one level above this package.
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lib = std::path::Path::new(&root).join("../../libtorch/lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../../libtorch/lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../../../libtorch/lib");
    println!("cargo:rerun-if-changed=build.rs");
}
