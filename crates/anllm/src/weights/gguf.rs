//! GGUF reading: the header parsed without panics, every tensor's extent checked against the
//! file, and the mapping from HF tensor names to llama.cpp's.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::Tensor;
use candle_core::quantized::gguf_file;

use crate::{Error, Result};

/// Opens the GGUF file `path`, parses its header and checks that every tensor lies inside the
/// file.
pub(super) fn open(path: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let fmt_err = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let content = read_gguf_content(path, &mut reader)?;
    for (name, info) in &content.tensor_infos {
        let end = gguf_tensor_end(content.tensor_data_offset, info)
            .map_err(|why| fmt_err(format!("tensor `{name}`: {why}")))?;
        if end > file_len {
            return Err(fmt_err(format!(
                "truncated: tensor `{name}` ends at byte {end} but the file has {file_len} bytes"
            )));
        }
    }
    Ok((content, reader))
}

/// Parses the header of the GGUF file `path` from `reader`.
///
/// candle's parser panics on some crafted headers (a `general.alignment` of 0 divides by zero),
/// so a panic inside it is caught and reported as [`Error::Format`] like any other bad header.
pub fn read_gguf_content<R: std::io::Read + std::io::Seek>(
    path: &Path,
    reader: &mut R,
) -> Result<gguf_file::Content> {
    let fmt_err = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    // The reader is dropped by the caller on error, so no state broken by a panic is reused.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gguf_file::Content::read(reader)
    }));
    match parsed {
        Ok(Ok(content)) => Ok(content),
        Ok(Err(e)) => Err(fmt_err(format!("bad GGUF header: {e}"))),
        Err(_) => Err(fmt_err(
            "bad GGUF header: the parser rejected it (e.g. `general.alignment` is 0)".into(),
        )),
    }
}

/// The byte just past a GGUF tensor's data, with every step checked: a crafted header must not
/// overflow past the truncation check.
fn gguf_tensor_end(data_offset: u64, info: &gguf_file::TensorInfo) -> Result<u64, String> {
    let dims = info.shape.dims();
    let elems = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("element count of shape {dims:?} overflows"))?;
    let (block, type_size) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
    if !elems.is_multiple_of(block) {
        return Err(format!(
            "{elems} elements are not a whole number of {:?} blocks of {block}",
            info.ggml_dtype
        ));
    }
    let bytes = (elems / block)
        .checked_mul(type_size)
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(|| format!("byte size of shape {dims:?} overflows"))?;
    data_offset
        .checked_add(info.offset)
        .and_then(|start| start.checked_add(bytes))
        .ok_or_else(|| {
            format!(
                "offset {} + {bytes} bytes overflows past the end of any file",
                info.offset
            )
        })
}

/// Maps an HF tensor name to llama.cpp's GGUF name.
pub fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let Some(rest) = hf.strip_prefix("model.layers.") else {
        return hf.to_string();
    };
    let Some((layer, tail)) = rest.split_once('.') else {
        return hf.to_string();
    };
    let short = match tail {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => return format!("blk.{layer}.{other}"),
    };
    format!("blk.{layer}.{short}")
}

/// HF → GGUF row order of a Q or K weight `[heads * head_dim, hidden]`: within each head, row
/// `j * head_dim / 2 + i` moves to `2 * i + j` (llama.cpp's converter `permute`, which GGUF
/// writers apply for interleaved RoPE).
pub fn permute_for_interleaved_rope(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let hd = rows / heads.max(1);
    Ok(w.reshape((heads, 2, hd / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_name_maps_layer_tensors() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.k_proj.weight"),
            "blk.3.attn_k.weight"
        );
        assert_eq!(
            gguf_name("model.layers.12.mlp.down_proj.weight"),
            "blk.12.ffn_down.weight"
        );
        assert_eq!(gguf_name("model.embed_tokens.weight"), "token_embd.weight");
        assert_eq!(gguf_name("lm_head.weight"), "output.weight");
    }
}
