//! The bytes a decode step reads of the weights (`Llama::decode_weight_bytes`, the numerator of
//! `anllm bench --bandwidth`'s share), against the sizes derived by hand from the config.

use anllm::testutil::tiny_model;

#[test]
fn decode_weight_bytes_of_a_dense_model_follow_from_its_config() {
    let model = tiny_model();
    let c = model.llama.config();
    let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (h, kvh, hd) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
    // q and o: h·hd·d each; k and v: kvh·hd·d each; gate, up, down: d·f each; two norms.
    let per_layer = 2 * h * hd * d + 2 * kvh * hd * d + 3 * d * f + 2 * d;
    // The final norm, the LM head (untied or tied: the whole table is read) and one embedding
    // row; f32 weights.
    let want = 4 * (c.num_hidden_layers * per_layer + d + v * d + d);
    assert_eq!(model.llama.decode_weight_bytes(), want);
}
