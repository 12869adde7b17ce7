package oga

import (
	"math"
	"strconv"
)

// MaxAPIVersion is the highest OGA API version this host side speaks (VDSM's
// _MAX_SUPPORTED_API_VERSION).
const MaxAPIVersion = 3

// commandMinAPI is VDSM's send gate (_MESSAGE_API_VERSION_LOOKUP); unlisted commands need 0.
var commandMinAPI = map[string]int{
	CmdSetNumberOfCPUs: 1,
	CmdLifecycleEvent:  3,
}

// MinAPIVersion returns the API version a command needs before it may be sent.
func MinAPIVersion(command string) int { return commandMinAPI[command] }

// ClampAPIVersion clamps v into [0, MaxAPIVersion].
func ClampAPIVersion(v int) int { return max(0, min(v, MaxAPIVersion)) }

// apiVersionResult is the outcome of reading a heartbeat's apiVersion field.
type apiVersionResult int

const (
	apiOK      apiVersionResult = iota // version holds the clamped value
	apiInvalid                         // unparsable string: VDSM warns and uses 0
	apiIgnored                         // null, list, object: VDSM raises TypeError; we ignore the field
)

// parseAPIVersion mirrors VDSM's min(max(int(v), 0), 3): 2 → 2, "2" → 2, " 2 " → 2, 3.7 → 3,
// 7 → 3, -1 → 0, true → 1, "abc" → 0 with a warning, "3.7" → 0 with a warning (Python's int()
// rejects it). null, lists and objects make int() raise TypeError, which in VDSM escapes the
// heartbeat handler; here the field is simply ignored (the version stays unchanged).
func (d *decoder) parseAPIVersion(v node) (int, apiVersionResult) {
	switch v.kind {
	case kindTrue:
		return 1, apiOK
	case kindFalse:
		return 0, apiOK
	case kindNumber:
		b := d.bytes(v)
		if !v.flag {
			if b[0] == '-' {
				return 0, apiOK
			}
			if len(b) > 1 {
				return MaxAPIVersion, apiOK
			}
			return ClampAPIVersion(int(b[0] - '0')), apiOK
		}
		f, _ := strconv.ParseFloat(string(b), 64) // range errors give ±Inf, which clamp fine
		switch {
		case f >= MaxAPIVersion:
			return MaxAPIVersion, apiOK
		case f < 1 || math.IsNaN(f):
			return 0, apiOK
		}
		return int(f), apiOK
	case kindString:
		b := trimSpace(d.bytes(v))
		neg := false
		if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
			neg = b[0] == '-'
			b = b[1:]
		}
		if len(b) == 0 {
			return 0, apiInvalid
		}
		big := false
		val := 0
		prevDigit := false
		for i, c := range b {
			switch {
			case c >= '0' && c <= '9':
				if !big {
					val = val*10 + int(c-'0')
					big = val > MaxAPIVersion
				}
				prevDigit = true
			case c == '_' && prevDigit && i+1 < len(b): // Python allows single underscores
				prevDigit = false
			default:
				return 0, apiInvalid
			}
		}
		if !prevDigit {
			return 0, apiInvalid
		}
		if neg {
			return 0, apiOK
		}
		if big {
			return MaxAPIVersion, apiOK
		}
		return val, apiOK
	}
	return 0, apiIgnored
}
