//! The Rust peer of `benches/e2e.sh`: what a user of the `oci-client` crate would write to
//! pull an image and unpack it, following the crate's documentation.
//!
//! `peer-oci-client REF OUT_DIR` pulls REF over plain HTTP with anonymous auth
//! (`Client::pull`, which holds every layer in memory), then unpacks the layers in order
//! into OUT_DIR with `flate2` and `tar::Archive::unpack`. It verifies no DiffID, applies no
//! whiteouts and is not confined to OUT_DIR beyond what `tar` itself refuses.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, out] = args.as_slice() else {
        eprintln!("usage: peer-oci-client REF OUT_DIR");
        return ExitCode::from(2);
    };
    match run(reference, PathBuf::from(out)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer-oci-client: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(reference: &str, out: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let reference: Reference = reference.parse()?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let t0 = Instant::now();
    let image = client
        .pull(
            &reference,
            &RegistryAuth::Anonymous,
            vec![
                manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
                manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                manifest::IMAGE_LAYER_MEDIA_TYPE,
                manifest::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
            ],
        )
        .await?;
    let pulled = t0.elapsed();
    std::fs::create_dir_all(&out)?;
    let layers = image.layers.len();
    let bytes: usize = image.layers.iter().map(|l| l.data.len()).sum();
    let out2 = out.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for layer in &image.layers {
            let data: &[u8] = &layer.data;
            if layer.media_type.ends_with("gzip") {
                tar::Archive::new(flate2::read::GzDecoder::new(data)).unpack(&out2)?;
            } else {
                tar::Archive::new(data).unpack(&out2)?;
            }
        }
        Ok(())
    })
    .await??;
    println!(
        "{layers} layers, {bytes} bytes: pulled in {:.3} s, unpacked in {:.3} s",
        pulled.as_secs_f64(),
        (t0.elapsed() - pulled).as_secs_f64()
    );
    Ok(())
}
