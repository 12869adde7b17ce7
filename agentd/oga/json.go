package oga

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode/utf8"

	"guestagent.io/operator/agentd/guest"
)

// This file holds a small JSON parser specialised for OGA lines. It exists because the generic
// route (encoding/json into map[string]any, then a recursive filter pass) allocates for every
// key, value and container and cannot keep integers exact without json.Number strings. Here a
// line is parsed into a flat, reused arena of 12-byte nodes; strings that need neither unescaping
// nor filtering are referenced in place, the others are decoded (and filtered) once into a reused
// scratch buffer. Parsing a typical line allocates nothing.
//
// Behaviour, compared with VDSM's UTF-8 decode + json.loads + filter:
//   - invalid UTF-8 inside strings becomes U+FFFD (one per invalid byte; Python's "replace"
//     handler may merge a truncated sequence into one U+FFFD);
//   - XML-invalid code points (see xmlInvalid) become U+FFFD after unescaping, in keys and values
//     at every depth, so \u0000 or a lone \ud800 cannot smuggle them in;
//   - numbers keep their literal text; integers are read exactly (up to 2^64-1 unsigned);
//   - NaN/Infinity (accepted by Python, never sent by OGA) are rejected;
//   - nesting deeper than maxDepth is rejected (Python would raise RecursionError near 1000).

// maxDepth bounds container nesting. OGA messages nest at most 4 levels.
const maxDepth = 64

type kind uint8

const (
	kindNull kind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is one parsed JSON value. For strings and numbers, off/n locate the text in the line
// (flag false) or in the decoder's scratch buffer (flag true, strings only). For numbers, flag
// reports a non-integer literal (fraction or exponent). For arrays, off is the index of the first
// element in the arena and n the element count; for objects, the arena holds n key/value pairs
// (2n nodes) starting at off.
type node struct {
	kind kind
	flag bool
	off  uint32
	n    uint32
}

var (
	errSyntax    = errors.New("invalid JSON")
	errDepth     = errors.New("JSON nested too deeply")
	errNotObject = errors.New("JSON message is not an object")
)

// decoder parses one line at a time. Its buffers are reused across lines; nodes and the byte
// slices returned by str are valid until the next parse.
type decoder struct {
	line    []byte
	pos     int
	depth   int
	arena   []node
	stack   []node
	scratch []byte
}

// arenaKeep is the arena capacity kept between lines; larger arenas (hostile lines) are released.
const arenaKeep = 1 << 14

// parse parses line, which must hold exactly one JSON object (surrounding whitespace allowed).
func (d *decoder) parse(line []byte) (node, error) {
	d.reset(line)
	d.skipSpace()
	if d.pos >= len(d.line) {
		return node{}, errSyntax
	}
	isObj := d.line[d.pos] == '{'
	v, err := d.value()
	if err != nil {
		return node{}, err
	}
	d.skipSpace()
	if d.pos != len(d.line) {
		return node{}, errSyntax
	}
	if !isObj {
		return node{}, errNotObject
	}
	return v, nil
}

// reset prepares the decoder for a new line, releasing buffers a hostile line made large.
func (d *decoder) reset(line []byte) {
	if cap(d.arena) > arenaKeep {
		d.arena, d.stack = nil, nil
	}
	if cap(d.scratch) > shrinkAbove {
		d.scratch = nil
	}
	d.line, d.pos, d.depth = line, 0, 0
	d.arena, d.stack, d.scratch = d.arena[:0], d.stack[:0], d.scratch[:0]
}

// skipWS returns the index of the first non-whitespace byte of l at or after i, or len(l).
func skipWS(l []byte, i int) int {
	for i < len(l) && (l[i] == ' ' || l[i] == '\t' || l[i] == '\n' || l[i] == '\r') {
		i++
	}
	return i
}

func (d *decoder) skipSpace() {
	// Fast exit: the next byte is usually a token (no JSON whitespace is above ' ').
	if d.pos < len(d.line) && d.line[d.pos] > ' ' {
		return
	}
	for d.pos < len(d.line) {
		switch d.line[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (node, error) {
	if d.pos >= len(d.line) {
		return node{}, errSyntax
	}
	switch c := d.line[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true", kindTrue)
	case c == 'f':
		return d.literal("false", kindFalse)
	case c == 'n':
		return d.literal("null", kindNull)
	}
	return node{}, errSyntax
}

func (d *decoder) literal(lit string, k kind) (node, error) {
	if len(d.line)-d.pos < len(lit) || string(d.line[d.pos:d.pos+len(lit)]) != lit {
		return node{}, errSyntax
	}
	d.pos += len(lit)
	return node{kind: k}, nil
}

// close moves the children pushed since mark from the stack into the arena.
func (d *decoder) close(k kind, mark, count int) node {
	off := len(d.arena)
	d.arena = append(d.arena, d.stack[mark:]...)
	d.stack = d.stack[:mark]
	d.depth--
	return node{kind: k, off: uint32(off), n: uint32(count)}
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return errDepth
	}
	d.pos++ // '{' or '['
	d.skipSpace()
	return nil
}

func (d *decoder) object() (node, error) {
	if err := d.enter(); err != nil {
		return node{}, err
	}
	mark := len(d.stack)
	count := 0
	if d.pos < len(d.line) && d.line[d.pos] == '}' {
		d.pos++
		return d.close(kindObject, mark, 0), nil
	}
	for {
		if d.pos >= len(d.line) || d.line[d.pos] != '"' {
			return node{}, errSyntax
		}
		k, err := d.str()
		if err != nil {
			return node{}, err
		}
		d.skipSpace()
		if d.pos >= len(d.line) || d.line[d.pos] != ':' {
			return node{}, errSyntax
		}
		d.pos++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return node{}, err
		}
		d.stack = append(d.stack, k, v)
		count++
		d.skipSpace()
		if d.pos >= len(d.line) {
			return node{}, errSyntax
		}
		switch d.line[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			d.pos++
			return d.close(kindObject, mark, count), nil
		default:
			return node{}, errSyntax
		}
	}
}

func (d *decoder) array() (node, error) {
	if err := d.enter(); err != nil {
		return node{}, err
	}
	mark := len(d.stack)
	count := 0
	if d.pos < len(d.line) && d.line[d.pos] == ']' {
		d.pos++
		return d.close(kindArray, mark, 0), nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return node{}, err
		}
		d.stack = append(d.stack, v)
		count++
		d.skipSpace()
		if d.pos >= len(d.line) {
			return node{}, errSyntax
		}
		switch d.line[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case ']':
			d.pos++
			return d.close(kindArray, mark, count), nil
		default:
			return node{}, errSyntax
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (d *decoder) number() (node, error) {
	start := d.pos
	l := d.line
	i := d.pos
	if l[i] == '-' {
		i++
	}
	switch {
	case i < len(l) && l[i] == '0':
		i++
	case i < len(l) && l[i] >= '1' && l[i] <= '9':
		for i < len(l) && isDigit(l[i]) {
			i++
		}
	default:
		return node{}, errSyntax
	}
	frac := false
	if i < len(l) && l[i] == '.' {
		i++
		if i >= len(l) || !isDigit(l[i]) {
			return node{}, errSyntax
		}
		for i < len(l) && isDigit(l[i]) {
			i++
		}
		frac = true
	}
	if i < len(l) && (l[i] == 'e' || l[i] == 'E') {
		i++
		if i < len(l) && (l[i] == '+' || l[i] == '-') {
			i++
		}
		if i >= len(l) || !isDigit(l[i]) {
			return node{}, errSyntax
		}
		for i < len(l) && isDigit(l[i]) {
			i++
		}
		frac = true
	}
	d.pos = i
	return node{kind: kindNumber, flag: frac, off: uint32(start), n: uint32(i - start)}, nil
}

// plain[c] is true for bytes that can appear in a JSON string as-is and survive the filter.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// SWAR constants: one byte value repeated in every byte of a uint64.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// notPlain8 flags, in the high bit of each byte, the bytes of x (8 string bytes, little endian)
// that are not plain: below 0x20, '"', '\\', 0x7f or above. Flags above the lowest one may be
// spurious (borrows), but the lowest flag is always a real non-plain byte and every non-plain
// byte is flagged, so the index of the lowest flag is the index of the first non-plain byte.
func notPlain8(x uint64) uint64 {
	q := x ^ ('"' * swarLo)
	b := x ^ ('\\' * swarLo)
	return ((x + swarLo) | x | // 0x7f and above (a carry out of 0xff only adds flags above it)
		(x-0x20*swarLo)&^x | // below 0x20
		(q-swarLo)&^q | (b-swarLo)&^b) & swarHi // '"', '\\'
}

// plainRun returns the index of the first non-plain byte of l at or after i, or len(l).
func plainRun(l []byte, i int) int {
	for ; i+8 <= len(l); i += 8 {
		if m := notPlain8(binary.LittleEndian.Uint64(l[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(l) && plain[l[i]] {
		i++
	}
	return i
}

func (d *decoder) str() (node, error) {
	l := d.line
	start := d.pos + 1
	i := start
	for ; i+8 <= len(l); i += 8 { // plainRun, inlined
		if m := notPlain8(binary.LittleEndian.Uint64(l[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			goto end
		}
	}
	for i < len(l) && plain[l[i]] {
		i++
	}
end:
	if i < len(l) && l[i] == '"' {
		d.pos = i + 1
		return node{kind: kindString, off: uint32(start), n: uint32(i - start)}, nil
	}
	return d.slowStr(start, i)
}

// slowStr decodes a string that has escapes, non-ASCII bytes or DEL, from i on, into scratch.
func (d *decoder) slowStr(start, i int) (node, error) {
	l := d.line
	off := len(d.scratch)
	d.scratch = append(d.scratch, l[start:i]...)
	for {
		if i >= len(l) {
			return node{}, errSyntax
		}
		c := l[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return node{kind: kindString, flag: true, off: uint32(off), n: uint32(len(d.scratch) - off)}, nil
		case c < 0x20:
			return node{}, errSyntax // raw control characters are not valid JSON
		case c == '\\':
			r, n, err := unescape(l[i:])
			if err != nil {
				return node{}, err
			}
			d.scratch = appendFiltered(d.scratch, r)
			i += n
		case c < 0x7f:
			d.scratch = append(d.scratch, c)
			i++
		default:
			r, n := utf8.DecodeRune(l[i:])
			// Invalid UTF-8 decodes to RuneError, i.e. U+FFFD, as wanted.
			if n > 1 && !xmlInvalid(r) {
				d.scratch = append(d.scratch, l[i:i+n]...)
			} else {
				d.scratch = appendFiltered(d.scratch, r)
			}
			i += n
		}
	}
}

// unescape decodes one escape sequence at the start of b (b[0] == '\\'). A \u escape of a high
// surrogate followed by a \u escape of a low surrogate yields the combined code point; any other
// surrogate is returned as is (and later filtered to U+FFFD).
func unescape(b []byte) (rune, int, error) {
	if len(b) < 2 {
		return 0, 0, errSyntax
	}
	switch b[1] {
	case '"':
		return '"', 2, nil
	case '\\':
		return '\\', 2, nil
	case '/':
		return '/', 2, nil
	case 'b':
		return '\b', 2, nil
	case 'f':
		return '\f', 2, nil
	case 'n':
		return '\n', 2, nil
	case 'r':
		return '\r', 2, nil
	case 't':
		return '\t', 2, nil
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0, errSyntax
		}
		if r >= 0xD800 && r < 0xDC00 && len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if lo, ok := hex4(b[8:]); ok && lo >= 0xDC00 && lo < 0xE000 {
				return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12, nil
			}
		}
		return r, 6, nil
	}
	return 0, 0, errSyntax
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// --- accessors -------------------------------------------------------------------------------

// bytes returns the text of a string or number node. Valid until the next parse.
func (d *decoder) bytes(v node) []byte {
	if v.kind == kindString && v.flag {
		return d.scratch[v.off : v.off+v.n]
	}
	if v.kind == kindString || v.kind == kindNumber {
		return d.line[v.off : v.off+v.n]
	}
	return nil
}

// get returns the value of key in object obj. Like a Python dict built from JSON, the last
// duplicate wins.
func (d *decoder) get(obj node, key string) (node, bool) {
	if obj.kind != kindObject {
		return node{}, false
	}
	base := int(obj.off)
	for i := int(obj.n) - 1; i >= 0; i-- { // backwards: the first match is the last duplicate
		k := d.arena[base+2*i]
		if int(k.n) == len(key) && string(d.bytes(k)) == key {
			return d.arena[base+2*i+1], true
		}
	}
	return node{}, false
}

// member returns the i-th key/value pair of an object.
func (d *decoder) member(obj node, i int) (key, val node) {
	base := int(obj.off) + 2*i
	return d.arena[base], d.arena[base+1]
}

// elem returns the i-th element of an array.
func (d *decoder) elem(arr node, i int) node { return d.arena[int(arr.off)+i] }

// text returns a string node's text, or ok=false for other kinds.
func (d *decoder) text(v node) ([]byte, bool) {
	if v.kind != kindString {
		return nil, false
	}
	return guest.CutUTF8(d.bytes(v), MaxTextBytes), true
}

// MaxTextBytes caps every string value taken from a message (after decoding, so after invalid
// UTF-8 became U+FFFD, which triples it). The model is kept for the domain's lifetime; the
// published status shortens strings further.
const MaxTextBytes = 4096

// getText returns the string value of key, if present and a string.
func (d *decoder) getText(obj node, key string) ([]byte, bool) {
	v, ok := d.get(obj, key)
	if !ok {
		return nil, false
	}
	return d.text(v)
}
