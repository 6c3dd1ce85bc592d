//! Gives the shared library the name it is installed under (scripts/build-c), so that programs
//! linked against it look for `libbystander.so.0`.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbystander.so.0");
}
