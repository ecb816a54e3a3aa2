//! Records how the extension was built, for `php --ri qrpush` (target, profile).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=QRPUSH_BUILD_INFO={target}, {profile}, ext-php-rs 0.16");
    println!("cargo:rerun-if-changed=build.rs");
}
