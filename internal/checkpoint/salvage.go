package checkpoint

import (
	"bytes"
	"encoding/json"
)

// salvage reads what a torn record still says: the sandbox's own fields (container ID,
// netns, pod) and, in order, each attachment written in full before the tear. Nothing after
// the first unreadable token is trusted; a record torn at its start (a power loss typically
// leaves it empty) gives an empty Sandbox.
func salvage(data []byte) *Sandbox {
	sb := &Sandbox{}
	fields := map[string]json.RawMessage{} // read whole, decoded at the end as Load would
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
		for dec.More() {
			t, err := dec.Token()
			key, ok := t.(string)
			if err != nil || !ok {
				break
			}
			if key == "attachments" {
				sb.Attachments = salvageAttachments(dec)
				continue
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				break
			}
			fields[key] = v
		}
	}
	if b, err := json.Marshal(fields); err == nil {
		_ = json.Unmarshal(b, sb) // a field of the wrong type is left out, the others kept
	}
	return sb
}

// salvageAttachments reads the attachments array up to its first incomplete element.
func salvageAttachments(dec *json.Decoder) []Attachment {
	var out []Attachment
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil
	}
	for dec.More() {
		var a Attachment
		if err := dec.Decode(&a); err != nil {
			return out
		}
		out = append(out, a)
	}
	_, _ = dec.Token() // the closing ]
	return out
}
