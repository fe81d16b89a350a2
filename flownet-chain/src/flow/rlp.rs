//! Recursive Length Prefix encoding, the serialisation Flow signs transactions
//! over. Only encoding is needed: Flow nodes decode, clients only sign.

/// An RLP item: a byte string or a list of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Bytes(Vec<u8>),
    List(Vec<Item>),
}

impl Item {
    /// An unsigned integer as its minimal big-endian bytes (zero is the empty string).
    pub fn uint(v: u64) -> Self {
        let bytes = v.to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Self::Bytes(bytes[first..].to_vec())
    }

    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        Self::Bytes(b.into())
    }

    /// The item's encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Bytes(b) if b.len() == 1 && b[0] < 0x80 => out.push(b[0]),
            Self::Bytes(b) => {
                header(out, 0x80, b.len());
                out.extend_from_slice(b);
            }
            Self::List(items) => {
                let mut body = Vec::new();
                for item in items {
                    item.encode_into(&mut body);
                }
                header(out, 0xc0, body.len());
                out.extend_from_slice(&body);
            }
        }
    }
}

fn header(out: &mut Vec<u8>, offset: u8, len: usize) {
    if len <= 55 {
        out.push(offset + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let first = be.iter().position(|b| *b != 0).unwrap_or(be.len() - 1);
        out.push(offset + 55 + (be.len() - first) as u8);
        out.extend_from_slice(&be[first..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Examples from the RLP specification in Ethereum's yellow paper appendix B.
    #[test]
    fn encodes_the_specification_examples() {
        assert_eq!(Item::bytes(*b"dog").encode(), [0x83, b'd', b'o', b'g']);
        assert_eq!(
            Item::List(vec![Item::bytes(*b"cat"), Item::bytes(*b"dog")]).encode(),
            [0xc8, 0x83, b'c', b'a', b't', 0x83, b'd', b'o', b'g']
        );
        assert_eq!(Item::bytes(Vec::new()).encode(), [0x80]);
        assert_eq!(Item::List(vec![]).encode(), [0xc0]);
        assert_eq!(Item::uint(0).encode(), [0x80]);
        assert_eq!(Item::uint(15).encode(), [0x0f]);
        assert_eq!(Item::uint(1024).encode(), [0x82, 0x04, 0x00]);
        // The set-theoretical representation of three: [ [], [[]], [ [], [[]] ] ].
        let e = || Item::List(vec![]);
        let three = Item::List(vec![
            e(),
            Item::List(vec![e()]),
            Item::List(vec![e(), Item::List(vec![e()])]),
        ]);
        assert_eq!(
            three.encode(),
            [0xc7, 0xc0, 0xc1, 0xc0, 0xc3, 0xc0, 0xc1, 0xc0]
        );
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit".to_vec();
        let mut expected = vec![0xb8, 0x38];
        expected.extend_from_slice(&lorem);
        assert_eq!(Item::bytes(lorem).encode(), expected);
    }

    #[test]
    fn long_lists_and_strings_use_length_of_length() {
        let long = Item::bytes(vec![0xaa; 1024]).encode();
        assert_eq!(&long[..3], &[0xb9, 0x04, 0x00]);
        assert_eq!(long.len(), 1027);
        let list = Item::List(vec![Item::bytes(vec![1u8; 60])]).encode();
        assert_eq!(&list[..2], &[0xf8, 62]);
        assert_eq!(Item::bytes(vec![0x80]).encode(), [0x81, 0x80]);
    }
}
