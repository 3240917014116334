//! merkle.py: RFC 9162 §2.1 hashing, inclusion (§2.1.3.2) and consistency (§2.1.4.2)
//! verification, checking in the reference's order so a bad input fails for the same
//! `reason` with the same detail.

use crate::json::Value;
use crate::pystr;
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

#[derive(Debug, PartialEq)]
pub struct MerkleError {
    pub reason: &'static str,
    pub detail: String,
}

fn fail(reason: &'static str, detail: String) -> MerkleError {
    MerkleError { reason, detail }
}

/// A JSON hash argument: lowercase or uppercase hex of exactly 32 bytes.
pub fn hash_arg(name: &str, value: Option<&Value>, reason: &'static str) -> Result<Hash, MerkleError> {
    let got = match value {
        Some(Value::Str(s)) => match crate::unhex(s) {
            Some(bytes) if bytes.len() == 32 => {
                let mut h = [0u8; 32];
                h.copy_from_slice(&bytes);
                return Ok(h);
            }
            Some(bytes) => format!("{} bytes", bytes.len()),
            None => "str".to_string(),
        },
        Some(v) => v.type_name().to_string(),
        None => "NoneType".to_string(),
    };
    Err(fail(reason, format!("{}: expected 32 bytes, got {}", name, got)))
}

fn proof_arg(value: Option<&Value>) -> Result<Vec<Hash>, MerkleError> {
    let items = match value {
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(fail(
                "bad-hash",
                format!("proof: expected a sequence of hashes, got {}", v.type_name()),
            ))
        }
        None => return Err(fail("bad-hash", "proof: expected a sequence of hashes, got NoneType".into())),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, h)| hash_arg(&format!("proof[{}]", i), Some(h), "bad-hash"))
        .collect()
}

fn int_arg(name: &str, value: Option<&Value>, reason: &'static str) -> Result<u64, MerkleError> {
    match value {
        Some(Value::Int(i)) if *i >= 0 && *i <= u64::MAX as i128 => Ok(*i as u64),
        other => Err(fail(
            reason,
            format!(
                "{}: expected an integer in [0, 2**64), got {}",
                name,
                other.map_or("None".to_string(), pystr::repr)
            ),
        )),
    }
}

fn split(n: u64) -> u64 {
    // the largest power of two strictly smaller than n (n > 1)
    1u64 << (63 - (n - 1).leading_zeros())
}

fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut start, mut end, mut count) = (0u64, size, 0usize);
    while end - start > 1 {
        let k = split(end - start);
        if index < start + k {
            end = start + k;
        } else {
            start += k;
        }
        count += 1;
    }
    count
}

fn consistency_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size == new_size {
        return 0;
    }
    let (mut start, mut end, mut complete, mut count) = (0u64, new_size, true, 0usize);
    while old_size != end {
        let k = split(end - start);
        if old_size <= start + k {
            end = start + k;
        } else {
            start += k;
            complete = false;
        }
        count += 1;
    }
    if !complete {
        count += 1;
    }
    count
}

fn hex(h: &Hash) -> String {
    crate::hex(h)
}

fn check_root(which: &str, expected: &Hash, got: &Hash) -> Result<(), MerkleError> {
    if got != expected {
        return Err(fail(
            "root-mismatch",
            format!("{}: expected {}, got {}", which, hex(expected), hex(got)),
        ));
    }
    Ok(())
}

fn check_length(path: usize, want: usize) -> Result<(), MerkleError> {
    if path != want {
        return Err(fail("proof-length", format!("expected {} hashes, got {}", want, path)));
    }
    Ok(())
}

pub fn verify_inclusion(args: &Value) -> Result<(), MerkleError> {
    let leaf = hash_arg("leaf hash", args.get("leaf_hash"), "bad-hash")?;
    let root = hash_arg("root", args.get("root"), "bad-hash")?;
    let path = proof_arg(args.get("proof"))?;
    let size = int_arg("size", args.get("size"), "bad-size")?;
    let index = int_arg("index", args.get("index"), "bad-index")?;
    if index >= size {
        return Err(fail(
            "bad-index",
            format!("expected an index below the tree size {}, got {}", size, index),
        ));
    }
    check_length(path.len(), inclusion_len(index, size))?;
    let (mut fn_, mut sn, mut r) = (index, size - 1, leaf);
    for p in &path {
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    check_root("root", &root, &r)
}

pub fn verify_consistency(args: &Value) -> Result<(), MerkleError> {
    let old_root = hash_arg("old root", args.get("old_root"), "bad-hash")?;
    let new_root = hash_arg("new root", args.get("new_root"), "bad-hash")?;
    let mut path = proof_arg(args.get("proof"))?;
    let old_size = int_arg("old size", args.get("old_size"), "bad-size")?;
    let new_size = int_arg("new size", args.get("new_size"), "bad-size")?;
    if old_size > new_size {
        return Err(fail(
            "bad-size",
            format!("expected an old size <= {}, got {}", new_size, old_size),
        ));
    }
    check_length(path.len(), consistency_len(old_size, new_size))?;
    if old_size == 0 {
        return check_root("old root", &empty_root(), &old_root);
    }
    if old_size == new_size {
        return check_root("new root", &old_root, &new_root);
    }
    if old_size & (old_size - 1) == 0 {
        path.insert(0, old_root);
    }
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    check_root("old root", &old_root, &fr)?;
    check_root("new root", &new_root, &sr)
}

/// The right edge of a growing tree (merkle.CompactRange): one hash per set bit of size.
#[derive(Default, Clone)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    pub fn append_leaf_data(&mut self, data: &[u8]) {
        self.hashes.push(leaf_hash(data));
        let mut carry = self.size;
        self.size += 1;
        while carry & 1 == 1 {
            let right = self.hashes.pop().unwrap_or([0; 32]);
            let left = self.hashes.last().copied().unwrap_or([0; 32]);
            if let Some(last) = self.hashes.last_mut() {
                *last = node_hash(&left, &right);
            }
            carry >>= 1;
        }
    }

    pub fn root(&self) -> Hash {
        match self.hashes.split_last() {
            None => empty_root(),
            Some((last, rest)) => {
                let mut acc = *last;
                for h in rest.iter().rev() {
                    acc = node_hash(h, &acc);
                }
                acc
            }
        }
    }
}

/// MTH over the leaf hashes of `data` items.
pub fn root_of_leaves(leaves: &[Vec<u8>]) -> Hash {
    let mut range = CompactRange::default();
    for d in leaves {
        range.append_leaf_data(d);
    }
    range.root()
}
