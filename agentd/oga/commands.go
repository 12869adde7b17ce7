package oga

import (
	"strconv"
	"unicode/utf8"
)

// Host → guest command names (§2 of the protocol reference).
const (
	CmdRefresh         = "refresh"
	CmdAPIVersion      = "api-version"
	CmdShutdown        = "shutdown"
	CmdLockScreen      = "lock-screen"
	CmdLogOff          = "log-off"
	CmdLifecycleEvent  = "lifecycle-event"
	CmdSetNumberOfCPUs = "set-number-of-cpus"
	CmdHibernate       = "hibernate"
)

// Lifecycle hook names the guest knows (directories under hooks.d/).
const (
	HookBeforeMigration   = "before_migration"
	HookAfterMigration    = "after_migration"
	HookBeforeHibernation = "before_hibernation"
	HookAfterHibernation  = "after_hibernation"
)

// HibernateState is the target state of a hibernate command.
type HibernateState string

// Hibernate states the guest understands.
const (
	HibernateDisk HibernateState = "disk"
	HibernateMem  HibernateState = "mem"
)

// arg is one command argument. Exactly one of the value fields is used, chosen by typ.
type arg struct {
	key   string
	typ   argType
	s     string
	i     int64
	truth bool
}

type argType uint8

const (
	argString argType = iota
	argInt
	argBool
)

func strArg(k, v string) arg       { return arg{key: k, typ: argString, s: v} }
func intArg(k string, v int64) arg { return arg{key: k, typ: argInt, i: v} }
func boolArg(k string, v bool) arg { return arg{key: k, typ: argBool, truth: v} }

// appendFrame encodes one command the way VDSM does: json.dumps with its default separators
// (", " and ": ") and ensure_ascii, the arguments in order and "__name__" last, then '\n'.
// Receivers must not depend on key order; tests pin the exact bytes anyway.
func appendFrame(buf []byte, name string, args ...arg) []byte {
	buf = append(buf, '{')
	for _, a := range args {
		buf = appendJSONString(buf, a.key)
		buf = append(buf, ": "...)
		switch a.typ {
		case argString:
			buf = appendJSONString(buf, a.s)
		case argInt:
			buf = strconv.AppendInt(buf, a.i, 10)
		case argBool:
			buf = strconv.AppendBool(buf, a.truth)
		}
		buf = append(buf, ", "...)
	}
	buf = append(buf, `"__name__": `...)
	buf = appendJSONString(buf, name)
	return append(buf, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s like Python's json.dumps(ensure_ascii=True): short escapes for
// \" \\ \n \r \t \b \f, \u00XX for other control characters, \uXXXX (surrogate pairs above
// U+FFFF) for non-ASCII. Invalid UTF-8 is sent as U+FFFD.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				buf = append(buf, '\\', '"')
			case '\\':
				buf = append(buf, '\\', '\\')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			default:
				if c < 0x20 {
					buf = appendU(buf, rune(c))
				} else {
					buf = append(buf, c)
				}
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r > 0xFFFF {
			r -= 0x10000
			buf = appendU(buf, 0xD800+(r>>10))
			buf = appendU(buf, 0xDC00+(r&0x3FF))
		} else {
			buf = appendU(buf, r)
		}
		i += n
	}
	return append(buf, '"')
}

func appendU(buf []byte, r rune) []byte {
	return append(buf, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}

// pyBool is Python's str(bool): the shutdown command's reboot argument is this string.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}
