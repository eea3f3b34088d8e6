//! Batched decode timing: B sessions (default 1, 2, 4, 8, 16; or the second argument) of the
//! model at the first argument step together through `Session::forward_batch` for 60 steps;
//! prints the mean step time and the aggregate tokens per second.

use anllm::{Session, SessionConfig, TokenId, WeightDtype, load_model};
use std::sync::Arc;
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let m = load_model(
        std::path::Path::new(&path),
        WeightDtype::Auto,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    for b in std::env::args()
        .nth(2)
        .map(|s| vec![s.parse::<usize>().unwrap()])
        .unwrap_or(vec![1usize, 2, 4, 8, 16])
    {
        let mut ss: Vec<Session> = (0..b)
            .map(|i| {
                let mut s =
                    Session::new(Arc::clone(&m.llama), SessionConfig::causal(64), 256).unwrap();
                s.prefill(&[1, 2, 3, 4 + i as u32], 0).unwrap();
                s.accept(5);
                s
            })
            .collect();
        let steps = 60;
        let t = Instant::now();
        for _ in 0..steps {
            let mut batch: Vec<(&mut Session, &[TokenId])> =
                ss.iter_mut().map(|s| (s, &[][..])).collect();
            let r = Session::forward_batch(&mut batch).unwrap();
            assert!(r.iter().all(|x| x.is_ok()));
            for s in ss.iter_mut() {
                s.accept(7);
            }
        }
        let dt = t.elapsed().as_secs_f64() / steps as f64;
        println!(
            "B={b} step={:.2} ms  agg={:.1} tok/s",
            dt * 1e3,
            b as f64 / dt
        );
    }
}
