package oga

import (
	"math"
	"strconv"
)

// parseUint parses an unsigned decimal integer literal exactly (up to 2^64-1).
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) < 20 { // at most 19 digits cannot overflow
		var v uint64
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + uint64(c-'0')
		}
		return v, true
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt parses a signed decimal integer literal exactly within int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg || (len(b) > 0 && b[0] == '+') {
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// uintOf reads a non-negative integer from a JSON integer or a decimal string (Windows agents
// send some figures as strings). Fractions, negatives and overflow are rejected.
func (d *decoder) uintOf(v node) (uint64, bool) {
	switch {
	case v.kind == kindNumber && !v.flag:
		return parseUint(d.bytes(v))
	case v.kind == kindString:
		return parseUint(trimSpace(d.bytes(v)))
	}
	return 0, false
}

// intOf reads an int64 from a JSON number (a fraction is truncated, like Python's int()) or a
// decimal integer string.
func (d *decoder) intOf(v node) (int64, bool) {
	switch {
	case v.kind == kindNumber && !v.flag:
		return parseInt(d.bytes(v))
	case v.kind == kindNumber:
		f, err := strconv.ParseFloat(string(d.bytes(v)), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f >= math.MaxInt64 || f <= math.MinInt64 {
			return 0, false
		}
		return int64(f), true
	case v.kind == kindString:
		return parseInt(trimSpace(d.bytes(v)))
	}
	return 0, false
}

func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
