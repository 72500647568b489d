//! `td3-sweep devices`.

use crate::results::LIBTORCH_VERSION;

/// Prints libtorch's version, CUDA availability and every GPU.
pub fn run() -> anyhow::Result<i32> {
    let n = tch::Cuda::device_count();
    println!("libtorch      {LIBTORCH_VERSION}");
    println!(
        "cuda          {}",
        if tch::Cuda::is_available() {
            "available"
        } else {
            "not available"
        }
    );
    println!(
        "cudnn         {}",
        if tch::Cuda::cudnn_is_available() {
            "available"
        } else {
            "not available"
        }
    );
    println!("cpu threads   {}", tch::get_num_threads());
    println!("gpus          {n}");
    for i in 0..n {
        println!("  cuda:{i}      {}", gpu_name(i as usize));
    }
    Ok(0)
}

fn gpu_name(i: usize) -> String {
    // libtorch's C API in tch exposes no device-property call; nvidia-smi, when present, names the card.
    std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader",
            "-i",
            &i.to_string(),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "NVIDIA GPU".into())
}
