//! A minimal `torch.save` writer: a zip archive holding a protocol-2 pickle of a state dict
//! (`archive/data.pkl`), one raw little-endian storage per tensor (`archive/data/<key>`) and
//! `archive/version`, as PyTorch ≥ 1.6 writes `pytorch_model.bin`.
//!
//! The pickle is the one `torch.save(state_dict)` produces for contiguous f32 tensors:
//! `{name: torch._utils._rebuild_tensor_v2(persistent_id(('storage', torch.FloatStorage, key,
//! 'cpu', numel)), 0, size, stride, False, collections.OrderedDict()), ...}`.

use std::io::Write;
use std::path::Path;

use candle_core::{DType, Tensor};

use crate::{Error, Result};

const PROTO: u8 = 0x80;
const EMPTY_DICT: u8 = b'}';
const MARK: u8 = b'(';
const SETITEMS: u8 = b'u';
const STOP: u8 = b'.';
const GLOBAL: u8 = b'c';
const BINUNICODE: u8 = b'X';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const TUPLE: u8 = b't';
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const EMPTY_TUPLE: u8 = b')';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const NEWFALSE: u8 = 0x89;

/// Pickle opcodes, appended to a byte buffer.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, op: u8) {
        self.0.push(op);
    }

    fn unicode(&mut self, s: &str) {
        self.op(BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(GLOBAL);
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn int(&mut self, v: usize) -> Result<()> {
        if let Ok(b) = u8::try_from(v) {
            self.op(BININT1);
            self.0.push(b);
        } else if let Ok(w) = u16::try_from(v) {
            self.op(BININT2);
            self.0.extend_from_slice(&w.to_le_bytes());
        } else {
            let i = i32::try_from(v)
                .map_err(|_| Error::unsupported(format!("pickle int {v} beyond i32")))?;
            self.op(BININT);
            self.0.extend_from_slice(&i.to_le_bytes());
        }
        Ok(())
    }

    /// A tuple of ints, with the short-tuple opcodes Python's pickler uses.
    fn int_tuple(&mut self, values: &[usize]) -> Result<()> {
        if values.len() > 3 {
            self.op(MARK);
        }
        for &v in values {
            self.int(v)?;
        }
        self.op(match values.len() {
            0 => EMPTY_TUPLE,
            1 => TUPLE1,
            2 => TUPLE2,
            3 => TUPLE3,
            _ => TUPLE,
        });
        Ok(())
    }

    /// `_rebuild_tensor_v2(persistent_id(...), 0, size, stride, False, OrderedDict())`.
    fn tensor(&mut self, key: &str, dims: &[usize]) -> Result<()> {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(MARK);
        self.op(MARK);
        self.unicode("storage");
        self.global("torch", "FloatStorage");
        self.unicode(key);
        self.unicode("cpu");
        self.int(dims.iter().product())?;
        self.op(TUPLE);
        self.op(BINPERSID);
        self.int(0)?;
        self.int_tuple(dims)?;
        let strides: Vec<usize> = (0..dims.len())
            .map(|i| dims[i + 1..].iter().product())
            .collect();
        self.int_tuple(&strides)?;
        self.op(NEWFALSE);
        self.global("collections", "OrderedDict");
        self.op(EMPTY_TUPLE);
        self.op(REDUCE);
        self.op(TUPLE);
        self.op(REDUCE);
        Ok(())
    }
}

/// The pickle of a state dict of `tensors`, keyed `"0"`, `"1"`, … in order.
fn state_dict_pickle(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut p = Pickle(vec![PROTO, 2, EMPTY_DICT, MARK]);
    for (key, (name, t)) in tensors.iter().enumerate() {
        p.unicode(name);
        p.tensor(&key.to_string(), t.dims())?;
    }
    p.op(SETITEMS);
    p.op(STOP);
    Ok(p.0)
}

/// Writes `tensors` (converted to f32) as a `torch.save` zip file at `path`.
pub fn save(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let zip_err = |e: zip::result::ZipError| Error::Format {
        path: path.to_path_buf(),
        reason: format!("writing zip: {e}"),
    };
    let io_err = |e: std::io::Error| Error::io(path, e);
    let file = std::fs::File::create(path).map_err(io_err)?;
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let entry = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, data: &[u8]| {
        zip.start_file(format!("archive/{name}"), options)
            .map_err(zip_err)?;
        zip.write_all(data).map_err(io_err)
    };
    entry(&mut zip, "data.pkl", &state_dict_pickle(tensors)?)?;
    entry(&mut zip, "byteorder", b"little")?;
    for (key, (_, t)) in tensors.iter().enumerate() {
        let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        entry(&mut zip, &format!("data/{key}"), &bytes)?;
    }
    entry(&mut zip, "version", b"3\n")?;
    zip.finish().map_err(zip_err)?;
    Ok(())
}
