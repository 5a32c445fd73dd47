//! The decoder comparison uses libtraceevent through `traceevent::host`,
//! which leaves linking the library to the program (see that crate).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A link argument lands after the rlibs that need it (a link-lib would not).
    println!("cargo:rustc-link-arg-bin=decoders=-ltraceevent");
}
