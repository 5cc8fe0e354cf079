package inject

import (
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes encoding/json writes as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (including <, > and &, and invalid UTF-8 as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringContent(b, s)
	return append(b, '"')
}

func appendJSONStringContent(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// appendPointerToken appends "/" and s as a JSON pointer reference token
// (RFC 6901: ~ as ~0, / as ~1), inside a JSON string.
func appendPointerToken(b []byte, s string) []byte {
	b = append(b, '/')
	for {
		i := indexAny(s, '~', '/')
		if i < 0 {
			return appendJSONStringContent(b, s)
		}
		b = appendJSONStringContent(b, s[:i])
		if s[i] == '~' {
			b = append(b, '~', '0')
		} else {
			b = append(b, '~', '1')
		}
		s = s[i+1:]
	}
}

func indexAny(s string, x, y byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == x || s[i] == y {
			return i
		}
	}
	return -1
}
