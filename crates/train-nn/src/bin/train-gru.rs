//! `train-gru`: the GRU trainer stage (see the `train-nn` library).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    train_nn::main(nn::CellKind::Gru, "train-gru").await
}
