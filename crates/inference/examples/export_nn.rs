//! Write a randomly initialised GRU/LSTM as the trainers export it
//! (`nn::export_onnx`), for `inference-bench model --onnx` and `serve --onnx`.
//!
//! `target/debug/examples/export_nn gru 1 128 11 10 5 /tmp/gru.onnx` (built by
//! `cargo build --workspace --all-targets`): cell, layers, hidden, features,
//! input_len, outputs (forecast steps x targets), output file. The published
//! study's models are `gru|lstm 1 128 11 10 5`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cell, layers, hidden, features, input_len, outputs, out] = args.as_slice() else {
        eprintln!("usage: export_nn gru|lstm LAYERS HIDDEN FEATURES INPUT_LEN OUTPUTS OUT.onnx");
        std::process::exit(2);
    };
    let num = |s: &String| s.parse::<usize>().expect("a positive number");
    let cell = match cell.as_str() {
        "gru" => nn::CellKind::Gru,
        "lstm" => nn::CellKind::Lstm,
        other => panic!("unknown cell {other}"),
    };
    let config = nn::ModelConfig {
        cell,
        n_features: num(features),
        hidden: num(hidden),
        layers: num(layers),
        input_len: num(input_len),
        n_outputs: num(outputs),
    };
    let net = nn::Network::new(config, 42);
    std::fs::write(out, nn::export_onnx(&net)).expect("write ONNX");
}
