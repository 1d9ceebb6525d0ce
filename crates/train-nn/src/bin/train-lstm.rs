//! `train-lstm`: the LSTM trainer stage (see the `train-nn` library).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    train_nn::main(nn::CellKind::Lstm, "train-lstm").await
}
