package oga

import "bytes"

// MaxMessageSize is the largest accepted line in bytes, including its terminating '\n' (VDSM's
// MAX_MESSAGE_SIZE). Longer lines are dropped whole and parsing resumes after their '\n'.
//
// Deviation from VDSM: VDSM only checks the unterminated remainder after each 64 KiB chunk, so a
// line that crosses the limit and ends in the same chunk is still parsed (real cap ≈ 1 MiB +
// 64 KiB). We enforce the cap exactly, independent of how the stream is chunked.
const MaxMessageSize = 1 << 20

// lineSplitter cuts a byte stream into '\n'-terminated lines with a hard size cap. It keeps at
// most max-1 bytes of a partial line; an oversized line switches it to a "skip until newline"
// state that holds no data at all.
type lineSplitter struct {
	max      int
	buf      []byte // pending partial line
	skipping bool   // inside an oversized line: discard until the next '\n'
}

// shrinkAbove is the capacity above which the partial-line buffer is released after use, so that
// one big line does not pin a large buffer for the lifetime of an idle connection.
const shrinkAbove = 256 << 10

func newLineSplitter(max int) *lineSplitter {
	if max <= 1 {
		max = MaxMessageSize
	}
	return &lineSplitter{max: max}
}

// pending reports how many bytes of an unterminated line are buffered.
func (s *lineSplitter) pending() int { return len(s.buf) }

// feed splits data into lines and calls line for each complete line (without its '\n'; a
// trailing '\r' is kept, JSON treats it as whitespace). The slice passed to line is only valid
// during the call. dropped is called once per oversized line, when the line is first known to be
// too long.
func (s *lineSplitter) feed(data []byte, line func([]byte), dropped func()) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if s.skipping {
			if i < 0 {
				return
			}
			data = data[i+1:]
			s.skipping = false
			continue
		}
		if i < 0 {
			// Unterminated: its length including the still-missing '\n' is at least
			// len(buf)+len(data)+1.
			if len(s.buf)+len(data)+1 > s.max {
				s.release()
				s.skipping = true
				dropped()
				return
			}
			s.buf = append(s.buf, data...)
			return
		}
		if len(s.buf)+i+1 > s.max {
			s.release() // the '\n' at i ends the oversized line
			dropped()
			data = data[i+1:]
			continue
		}
		if len(s.buf) == 0 {
			line(data[:i])
		} else {
			s.buf = append(s.buf, data[:i]...)
			line(s.buf)
			s.release()
		}
		data = data[i+1:]
	}
}

// release empties the partial-line buffer, dropping its memory when it grew large.
func (s *lineSplitter) release() {
	if cap(s.buf) > shrinkAbove {
		s.buf = nil
	} else {
		s.buf = s.buf[:0]
	}
}
