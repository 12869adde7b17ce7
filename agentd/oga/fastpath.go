package oga

import (
	"encoding/binary"
	"math/bits"
)

// heartbeatPrefix is how heartbeats start: every known agent sends __name__ first. Lines that
// start otherwise go straight to the general path; fastHeartbeat itself does not rely on it.
const heartbeatPrefix = `{"__name__":`

// looksLikeHeartbeat reports whether line starts with {"__name__": "heartbeat" (with or without
// the space), the cheap test that selects the fast path.
func looksLikeHeartbeat(line []byte) bool {
	if len(line) < len(heartbeatPrefix)+len(`"heartbeat"`) || string(line[:len(heartbeatPrefix)]) != heartbeatPrefix {
		return false
	}
	i := len(heartbeatPrefix)
	if line[i] == ' ' {
		i++
	}
	return len(line)-i >= len(`"heartbeat"`) && string(line[i:i+len(`"heartbeat"`)]) == `"heartbeat"`
}

// fastHeartbeat is the fast path for heartbeats, more than half of all OGA messages and three
// quarters of the bytes. It validates and applies a heartbeat line in one pass: the root object
// and its memory-stat object are consumed member by member, so neither is built in the arena and
// no key is looked up afterwards; plain keys and integer values of memory-stat are read in place,
// anything else goes through the general decoder. The effect is exactly that of
// handleLineGeneral (checked by FuzzHeartbeatFastPath): the last duplicate of a key wins,
// memory-stat members apply in order, strings are unescaped and filtered alike.
//
// It reports false, having changed nothing (neither m, *apiVersion nor *r), whenever the line is
// not a valid JSON object whose last __name__ is "heartbeat"; the caller then takes the general
// path, which also produces the errors.
func (m *model) fastHeartbeat(d *decoder, line []byte, apiVersion *int, r *lineResult) bool {
	d.reset(line)
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	d.pos = i
	if d.enter() != nil {
		return false
	}
	var (
		name, freeRAM, api       node
		hasName, hasFree, hasAPI bool
		st                       memStat
		haveStat                 bool
	)
	for {
		key, ok := d.memberKey()
		if !ok {
			return false // includes "{}": no __name__
		}
		switch string(key) {
		case "memory-stat":
			st, haveStat = memStat{}, false
			if d.pos < len(line) && line[d.pos] == '{' {
				if !d.streamMemoryStat(&st) {
					return false
				}
				haveStat = true
			} else if _, err := d.value(); err != nil {
				return false
			}
		default:
			v, err := d.value()
			if err != nil {
				return false
			}
			switch string(key) {
			case "__name__":
				name, hasName = v, true
			case "free-ram":
				freeRAM, hasFree = v, true
			case "apiVersion":
				api, hasAPI = v, true
			}
		}
		i := skipWS(line, d.pos)
		if i >= len(line) {
			return false
		}
		if c := line[i]; c == ',' {
			d.pos = skipWS(line, i+1)
			continue
		} else if c != '}' {
			return false
		}
		d.pos = i + 1
		break
	}
	d.depth--
	if skipWS(line, d.pos) != len(line) || !hasName {
		return false
	}
	if nm, ok := d.text(name); !ok || string(nm) != MsgHeartbeat {
		return false
	}
	r.valid = true
	r.changed = m.applyHeartbeat(d, freeRAM, hasFree, &st, haveStat)
	m.negotiateValue(d, api, hasAPI, apiVersion, r)
	return true
}

// memberKey reads an object member's key and the ':' after it, from d.pos (which must be at the
// key's opening quote), leaving d.pos at the value. The key's bytes are valid until the next
// parse. ok is false on a syntax error.
func (d *decoder) memberKey() (key []byte, ok bool) {
	l := d.line
	i := d.pos
	if i >= len(l) || l[i] != '"' {
		return nil, false
	}
	if j := plainRun(l, i+1); j < len(l) && l[j] == '"' {
		key, i = l[i+1:j], j+1
	} else {
		k, err := d.str()
		if err != nil {
			return nil, false
		}
		key, i = d.bytes(k), d.pos
	}
	i = skipWS(l, i)
	if i >= len(l) || l[i] != ':' {
		return nil, false
	}
	d.pos = skipWS(l, i+1)
	return key, true
}

// streamMemoryStat consumes the object at d.pos ('{'), applying each member whose value is a
// non-negative integer to st in order, as heartbeat does for an object in the arena. It reports
// false on any syntax error. The loop reads the common shape in place: a key of plain bytes found
// 8 bytes at a time, an integer of up to 19 digits (smallUint); any other key or value goes
// through the general decoder.
func (d *decoder) streamMemoryStat(st *memStat) bool {
	if d.enter() != nil {
		return false
	}
	l := d.line
	i := d.pos
	if i < len(l) && l[i] == '}' {
		d.pos = i + 1
		d.depth--
		return true
	}
	for {
		if i >= len(l) || l[i] != '"' {
			return false
		}
		// Key: plain bytes up to a '"' within 16 bytes, else the general path.
		var key []byte
		j := i + 1
		if j+16 <= len(l) {
			m := notPlain8(binary.LittleEndian.Uint64(l[j:]))
			if m == 0 {
				j += 8
				m = notPlain8(binary.LittleEndian.Uint64(l[j:]))
			}
			if m != 0 {
				j += bits.TrailingZeros64(m) >> 3
			}
			if m != 0 && l[j] == '"' {
				key, i = l[i+1:j], j+1
			}
		}
		if key == nil {
			d.pos = i
			k, ok := d.memberKey()
			if !ok {
				return false
			}
			key, i = k, d.pos
		} else {
			i = skipWS(l, i)
			if i >= len(l) || l[i] != ':' {
				return false
			}
			i = skipWS(l, i+1)
		}
		if n, end, ok := smallUint(l, i); ok {
			st.set(key, n)
			i = end
		} else {
			d.pos = i
			v, err := d.value()
			if err != nil {
				return false
			}
			if n, ok := d.uintOf(v); ok {
				st.set(key, n)
			}
			i = d.pos
		}
		i = skipWS(l, i)
		if i >= len(l) {
			return false
		}
		switch l[i] {
		case ',':
			i = skipWS(l, i+1)
		case '}':
			d.pos = i + 1
			d.depth--
			return true
		default:
			return false
		}
	}
}

// smallUint reads a JSON integer literal of 1 to 19 digits without sign, fraction or exponent at
// l[i:], returning its value and end. ok is false for anything else (including a longer number or
// one followed by '.', 'e' or 'E'), which the caller then hands to the general decoder.
func smallUint(l []byte, i int) (n uint64, end int, ok bool) {
	start := i
	if i >= len(l) || l[i]-'0' > 9 {
		return 0, 0, false
	}
	if l[i] == '0' {
		i++
	} else {
		for i < len(l) && l[i]-'0' <= 9 {
			n = n*10 + uint64(l[i]-'0')
			i++
		}
	}
	if i-start > 19 {
		return 0, 0, false
	}
	if i < len(l) {
		if c := l[i]; c-'0' <= 9 || c == '.' || c == 'e' || c == 'E' {
			return 0, 0, false
		}
	}
	return n, i, true
}
