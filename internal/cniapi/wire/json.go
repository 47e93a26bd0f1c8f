package wire

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting as encoding/json does, so a hostile conf cannot exhaust the stack.
const maxDepth = 10000

// SyntaxError says what is malformed in a JSON input and where.
type SyntaxError struct {
	What   string
	Offset int
}

func (e *SyntaxError) Error() string {
	return "invalid JSON: " + e.What + " at offset " + strconv.Itoa(e.Offset)
}

// Object checks that data is exactly one JSON object (whitespace around it allowed) and
// calls f with each member's decoded key and raw value, in order; a repeated key is seen
// twice, and the caller's last assignment wins as with encoding/json.
func Object(data []byte, f func(key string, value []byte) error) error {
	s := scanner{data: data}
	s.space()
	if !s.byte('{') {
		return s.fail("not an object")
	}
	s.space()
	if s.byte('}') {
		return s.end()
	}
	for {
		key, err := s.member()
		if err != nil {
			return err
		}
		start := s.pos
		if err := s.value(1); err != nil {
			return err
		}
		if err := f(unquote(key), data[start:s.pos]); err != nil {
			return err
		}
		s.space()
		if s.byte('}') {
			return s.end()
		}
		if !s.byte(',') {
			return s.fail("want , or } after an object member")
		}
		s.space()
	}
}

// Valid reports whether data is exactly one JSON value (whitespace around it allowed).
func Valid(data []byte) error {
	s := scanner{data: data}
	s.space()
	if err := s.value(0); err != nil {
		return err
	}
	return s.end()
}

// String decodes a raw JSON string value, replacing invalid UTF-8 and lone surrogates with
// U+FFFD as encoding/json does.
func String(raw []byte) (string, error) {
	s := scanner{data: raw}
	if err := s.str(); err != nil || s.pos != len(raw) {
		return "", &SyntaxError{What: "not a string", Offset: 0}
	}
	return unquote(raw[1 : len(raw)-1]), nil
}

// AppendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, `\u00`...)
				dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

func isNull(raw []byte) bool { return raw == nil || string(raw) == "null" }

// scanner walks JSON text, checking its grammar (RFC 8259) without building values.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) fail(what string) error {
	return &SyntaxError{What: what, Offset: s.pos}
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// byte consumes c if it comes next.
func (s *scanner) byte(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// end checks that nothing but whitespace follows the value.
func (s *scanner) end() error {
	s.space()
	if s.pos != len(s.data) {
		return s.fail("data after the value")
	}
	return nil
}

// member reads `"key" :` and the whitespace after it, and returns the key's inside, undecoded.
func (s *scanner) member() ([]byte, error) {
	start := s.pos
	if err := s.str(); err != nil {
		return nil, err
	}
	key := s.data[start+1 : s.pos-1]
	s.space()
	if !s.byte(':') {
		return nil, s.fail("want : after an object key")
	}
	s.space()
	return key, nil
}

func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	if s.pos >= len(s.data) {
		return s.fail("unexpected end")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
			s.pos += len(lit)
			return nil
		}
	}
	return s.fail("unexpected character")
}

func (s *scanner) object(depth int) error {
	s.pos++
	s.space()
	if s.byte('}') {
		return nil
	}
	for {
		if _, err := s.member(); err != nil {
			return err
		}
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.byte('}') {
			return nil
		}
		if !s.byte(',') {
			return s.fail("want , or } in an object")
		}
		s.space()
	}
}

func (s *scanner) array(depth int) error {
	s.pos++
	s.space()
	if s.byte(']') {
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.byte(']') {
			return nil
		}
		if !s.byte(',') {
			return s.fail("want , or ] in an array")
		}
		s.space()
	}
}

// str consumes a string token: quotes, escapes, no raw control characters.
func (s *scanner) str() error {
	if !s.byte('"') {
		return s.fail("want a string")
	}
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return nil
		case c < 0x20:
			return s.fail("control character in a string")
		case c == '\\':
			if err := s.escape(); err != nil {
				return err
			}
		default:
			s.pos++
		}
	}
	return s.fail("unterminated string")
}

func (s *scanner) escape() error {
	s.pos++
	if s.pos >= len(s.data) {
		return s.fail("unterminated escape")
	}
	switch s.data[s.pos] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.pos++
		return nil
	case 'u':
		if s.pos+4 >= len(s.data) {
			return s.fail("short \\u escape")
		}
		if _, ok := hex4(s.data[s.pos+1 : s.pos+5]); !ok {
			return s.fail("bad \\u escape")
		}
		s.pos += 5
		return nil
	}
	return s.fail("bad escape")
}

func (s *scanner) number() error {
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.digits() == 0:
		return s.fail("bad number")
	}
	if s.byte('.') && s.digits() == 0 {
		return s.fail("bad fraction")
	}
	if s.byte('e') || s.byte('E') {
		if !s.byte('+') {
			s.byte('-')
		}
		if s.digits() == 0 {
			return s.fail("bad exponent")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unquote decodes the inside of a string token the scanner has checked.
func unquote(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			var r rune
			r, i = unescape(b, i)
			out = utf8.AppendRune(out, r)
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r) // invalid UTF-8: RuneError, U+FFFD
			i += size
		}
	}
	return string(out)
}

// unescape decodes the escape at b[i] and returns the rune and the index after it.
func unescape(b []byte, i int) (rune, int) {
	switch c := b[i+1]; c {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
	default: // " \ /
		return rune(c), i + 2
	}
	r, _ := hex4(b[i+2 : i+6])
	if !utf16.IsSurrogate(r) {
		return r, i + 6
	}
	if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
		if r2, ok := hex4(b[i+8 : i+12]); ok {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, i + 12
			}
		}
	}
	return utf8.RuneError, i + 6
}
