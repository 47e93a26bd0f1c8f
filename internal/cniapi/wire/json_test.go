package wire

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// TestObjectAgreesWithEncodingJSON: what Object accepts and the members it reports are what
// encoding/json makes of the same input.
func TestObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, ` {"a":1} `, `{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"x","a":[1,2.5e3,-0.1,true,false,null]}]}`,
		`{"a":"\u00e9\ud83d\ude00\n\"\\\/"}`, `{"a":"\ud800"}`, `{"a":"\ud800\u0041"}`, "{\"a\":\"\xff\"}",
		`{"a":{"b":{"c":[]}}}`, `{"a":1,"a":2}`,
		``, `[]`, `"s"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1}x`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
		`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":"x`, `{a:1}`,
		`{"a":[1,]}`, `{"a":[1 2]}`, `{"a":NaN}`,
	} {
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal([]byte(in), &want)
		got := map[string]json.RawMessage{}
		err := Object([]byte(in), func(k string, v []byte) error { got[k] = v; return nil })
		if (err != nil) != (wantErr != nil) {
			t.Errorf("Object(%q) = %v, encoding/json says %v", in, err, wantErr)
			continue
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Errorf("Object(%q)[%q] = %s, want %s", in, k, got[k], v)
			}
		}
	}
}

// TestStringAgreesWithEncodingJSON: String and AppendString decode and encode as encoding/json.
func TestStringAgreesWithEncodingJSON(t *testing.T) {
	for _, raw := range []string{`""`, `"plain"`, `"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`, `"\ud800"`,
		`"\udc00\ud800x"`, `"\ud83d\u0041"`, "\"\xff\xfe\"", `"é"`} {
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		got, err := String([]byte(raw))
		if err != nil || got != want {
			t.Errorf("String(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, s := range []string{"", "a\"b\\c", "\x00\x1f\x7f<>&", "é😀", "\xff", "\u2028"} {
		var back string
		if err := json.Unmarshal(AppendString(nil, s), &back); err != nil || back != string([]rune(s)) && utf8.ValidString(s) {
			t.Errorf("AppendString(%q) = %s, decodes to %q, %v", s, AppendString(nil, s), back, err)
		}
	}
}

func TestSyntaxErrorSaysWhere(t *testing.T) {
	err := Valid([]byte(`{"a":1,}`))
	var syn *SyntaxError
	if !errors.As(err, &syn) || syn.Offset != 7 {
		t.Fatalf("Valid = %v, want a SyntaxError at offset 7", err)
	}
}

// FuzzScanner holds Object, Valid and String to encoding/json on any input.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"name":"x","cniVersion":"1.0.0"}`, `{"a":[1,{"b":null}]}`, `"\ud83d\ude00"`, `[1e5,-0]`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if (Valid(in) == nil) != json.Valid(in) {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v", in, Valid(in), json.Valid(in))
		}
		var obj map[string]json.RawMessage
		isObj := json.Unmarshal(in, &obj) == nil && obj != nil
		if err := Object(in, func(string, []byte) error { return nil }); (err == nil) != isObj {
			t.Fatalf("Object(%q) = %v, encoding/json object: %v", in, err, isObj)
		}
		var want string
		if json.Unmarshal(in, &want) == nil && len(in) > 0 && in[0] == '"' && in[len(in)-1] == '"' {
			if got, err := String(in); err != nil || got != want {
				t.Fatalf("String(%q) = %q, %v; want %q", in, got, err, want)
			}
		}
	})
}
