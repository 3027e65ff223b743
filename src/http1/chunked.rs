//! The chunked transfer coding of a request body (RFC 9112 §7.1), decoded as hyper's
//! decoder does, byte for byte: the same states, the same limits (16 KiB of chunk
//! extensions per body, 16 KiB and [`MAX_HEADERS`] lines of trailers), the same refusals
//! (a size without a digit or over 64 bits, whitespace inside a size, a bare LF after a
//! size, in an extension, after chunk data or anywhere in the trailer section — the last
//! by the carried hyper patch, `patches/README.md` — data longer than its size). Sans I/O: the
//! caller hands in what it has read and gets back what it may consume.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::MAX_HEADERS;

/// The most bytes of chunk extensions one body may carry (hyper's limit).
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
/// The most bytes the trailer section may take (hyper's limit).
const TRAILERS_LIMIT: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Body,
    BodyCr,
    BodyLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
    End,
}

/// What one call to [`Decoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Chunk data: the range of the input it is in.
    Data(std::ops::Range<usize>),
    /// The body ended, with these trailers (empty if none were sent).
    End(HeaderMap),
    /// Everything given was consumed; more input is needed.
    More,
}

/// The decoding state of one chunked body.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    size: u64,
    extensions: u64,
    trailers: Option<Vec<u8>>,
    trailer_lines: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Start,
            size: 0,
            extensions: 0,
            trailers: None,
            trailer_lines: 0,
        }
    }
}

impl Decoder {
    pub fn is_done(&self) -> bool {
        self.state == State::End
    }

    /// Decode from `input`: how many bytes were consumed, and what they gave. Data is
    /// returned as soon as some is found (call again with the rest).
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), ChunkError> {
        let mut i = 0;
        while i < input.len() || self.state == State::End {
            if self.state == State::End {
                let trailers = match self.trailers.take() {
                    Some(buf) => parse_trailers(&buf, self.trailer_lines)?,
                    None => HeaderMap::new(),
                };
                return Ok((i, Decoded::End(trailers)));
            }
            if self.state == State::Body {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::BodyCr;
                }
                return Ok((i + take, Decoded::Data(i..i + take)));
            }
            let b = input[i];
            i += 1;
            self.state = self.step(b)?;
        }
        Ok((i, Decoded::More))
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        use State::*;
        Ok(match self.state {
            Start => {
                self.digit(b).ok_or(ChunkError("missing size digit"))??;
                Size
            }
            // After a digit, more digits; after whitespace, no more digits.
            Size | SizeLws => match b {
                b'\t' | b' ' => SizeLws,
                b';' => Extension,
                b'\r' => SizeLf,
                _ if self.state == SizeLws => {
                    return Err(ChunkError("invalid whitespace in the size line"))
                }
                _ => {
                    self.digit(b).ok_or(ChunkError("invalid size"))??;
                    Size
                }
            },
            Extension => match b {
                b'\r' => SizeLf,
                b'\n' => return Err(ChunkError("a chunk extension contains a newline")),
                _ => {
                    self.extensions += 1;
                    if self.extensions >= EXTENSIONS_LIMIT {
                        return Err(ChunkError("chunk extensions over the limit"));
                    }
                    Extension
                }
            },
            SizeLf => match b {
                b'\n' if self.size == 0 => EndCr,
                b'\n' => Body,
                _ => return Err(ChunkError("no LF after the size line's CR")),
            },
            BodyCr => match b {
                b'\r' => BodyLf,
                _ => return Err(ChunkError("no CR after chunk data")),
            },
            BodyLf => match b {
                b'\n' => {
                    self.size = 0;
                    Start
                }
                _ => return Err(ChunkError("no LF after chunk data")),
            },
            // A bare LF in the trailer section is refused (the carried hyper patch does the
            // same): the section ends only at CRLF CRLF, a field parser would end it there.
            Trailer if b == b'\n' => return Err(ChunkError("a bare LF in the trailer section")),
            Trailer => {
                self.push_trailer(b)?;
                if b == b'\r' {
                    TrailerLf
                } else {
                    Trailer
                }
            }
            TrailerLf => match b {
                b'\n' => {
                    if self.trailer_lines >= MAX_HEADERS {
                        return Err(ChunkError("too many trailer lines"));
                    }
                    self.trailer_lines += 1;
                    self.push_trailer(b)?;
                    EndCr
                }
                _ => return Err(ChunkError("no LF after a trailer line's CR")),
            },
            EndCr if b == b'\n' => return Err(ChunkError("a bare LF after the last chunk")),
            EndCr => {
                if b == b'\r' {
                    if self.trailers.is_some() {
                        self.push_trailer(b)?;
                    }
                    EndLf
                } else {
                    self.trailers.get_or_insert_with(Vec::new);
                    self.push_trailer(b)?;
                    Trailer
                }
            }
            EndLf => match b {
                b'\n' => {
                    if self.trailers.is_some() {
                        self.push_trailer(b)?;
                    }
                    End
                }
                _ => return Err(ChunkError("no LF at the end of the body")),
            },
            Body | End => unreachable!("handled by decode"),
        })
    }

    /// Add a hex digit to the size: `None` if `b` is not one.
    fn digit(&mut self, b: u8) -> Option<Result<(), ChunkError>> {
        let d = char::from(b).to_digit(16)?;
        Some(
            self.size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(d)))
                .map(|s| self.size = s)
                .ok_or(ChunkError("chunk size over 64 bits")),
        )
    }

    fn push_trailer(&mut self, b: u8) -> Result<(), ChunkError> {
        let buf = self.trailers.get_or_insert_with(Vec::new);
        if buf.len() >= TRAILERS_LIMIT {
            return Err(ChunkError("trailers over the limit"));
        }
        buf.push(b);
        Ok(())
    }
}

/// The trailer section, parsed by httparse with room for `lines` fields (hyper's count of
/// CRLF-ended lines; a bare LF never gets here).
fn parse_trailers(buf: &[u8], lines: usize) -> Result<HeaderMap, ChunkError> {
    let mut fields = vec![httparse::EMPTY_HEADER; lines];
    match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields.iter() {
                let name = HeaderName::from_bytes(f.name.as_bytes())
                    .map_err(|_| ChunkError("invalid trailer name"))?;
                let value = HeaderValue::from_bytes(f.value)
                    .map_err(|_| ChunkError("invalid trailer value"))?;
                map.append(name, value);
            }
            Ok(map)
        }
        Ok(httparse::Status::Partial) => Err(ChunkError("incomplete trailer section")),
        Err(_) => Err(ChunkError("malformed trailer section")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `wire` whole: the data, the trailers, the bytes after the body.
    fn decode(wire: &[u8]) -> Result<(Vec<u8>, HeaderMap, usize), ChunkError> {
        let mut d = Decoder::default();
        let (mut at, mut data) = (0, Vec::new());
        loop {
            let (n, got) = d.decode(&wire[at..])?;
            match got {
                Decoded::Data(r) => data.extend_from_slice(&wire[at + r.start..at + r.end]),
                Decoded::End(t) => return Ok((data, t, at + n)),
                Decoded::More => return Err(ChunkError("test: incomplete")),
            }
            at += n;
        }
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (data, t, end) = decode(b"5\r\nhello\r\nA;x=y\r\n0123456789\r\n0\r\n\r\nNEXT").unwrap();
        assert_eq!(
            (data.as_slice(), t.len(), end),
            (&b"hello0123456789"[..], 0, 34)
        );
        let (data, t, _) = decode(b"3 \t;e\r\nabc\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\n").unwrap();
        assert_eq!(
            (data.as_slice(), t["x-a"].as_bytes()),
            (&b"abc"[..], &b"1"[..])
        );
        assert_eq!(t["x-b"], "2");
        // Data split over many calls.
        let mut d = Decoder::default();
        let wire = b"5\r\nhello\r\n0\r\n\r\n";
        let mut data = Vec::new();
        for (i, b) in wire.iter().enumerate() {
            match d.decode(std::slice::from_ref(b)).unwrap() {
                (1, Decoded::Data(r)) => data.extend_from_slice(&[*b][r]),
                (1, Decoded::More) => {}
                (0, Decoded::End(_)) | (1, Decoded::End(_)) => assert_eq!(i, wire.len() - 1),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(data, b"hello");
        assert!(d.is_done() || matches!(d.decode(b"").unwrap(), (0, Decoded::End(_))));
    }

    #[test]
    fn refuses_what_hyper_refuses() {
        for bad in [
            &b"x\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5;a\nhello\r\n0\r\n\r\n",
            b"5\r\nhello!\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"0\r\n\r\x00",
            b"0\r\nx-a: 1\r\x00",
            b"0\r\nx-a: 1\nx-b: 2\r\n\r\n",
            b"0\r\n\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\nx-a: 1\r\n\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode(bad).is_err_and(|e| e.0 != "test: incomplete"),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = format!("0\r\n{}\r\n", "x: y\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(
            decode(many.as_bytes()).err(),
            Some(ChunkError("too many trailer lines"))
        );
        let ext = format!("1;{}\r\n", "e".repeat(EXTENSIONS_LIMIT as usize));
        assert_eq!(
            decode(ext.as_bytes()).err(),
            Some(ChunkError("chunk extensions over the limit"))
        );
        let big = format!("0\r\nx-a: {}\r\n\r\n", "a".repeat(TRAILERS_LIMIT));
        assert_eq!(
            decode(big.as_bytes()).err(),
            Some(ChunkError("trailers over the limit"))
        );
    }
}
