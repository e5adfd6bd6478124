package safetensors

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// One table per validation rule. Each table is also part of the fuzz seed
// corpus (see allRejectCases).

var rejectShortFile = []rejectCase{
	{"empty", nil, []string{"file is 0 bytes", "shorter than the 8-byte header length"}},
	{"seven bytes", []byte{2, 0, 0, 0, 0, 0, 0}, []string{"file is 7 bytes", "shorter"}},
}

var rejectHeaderLength = []rejectCase{
	{"zero", buildLen(0, "{}"), []string{"header length is 0"}},
	{"over limit", buildLen(MaxHeaderSize+1, "{}"), []string{"header length 100000001 exceeds the limit of 100000000 bytes"}},
	{"huge", buildLen(1<<63, "{}"), []string{"header length 9223372036854775808 exceeds the limit"}},
	{"all ones", buildLen(^uint64(0), "{}"), []string{"exceeds the limit"}},
	{"past end of file", buildLen(10, "{}"), []string{"header length 10 is larger than the 2 bytes of the file after the length"}},
	{"length only", buildLen(1, ""), []string{"header length 1 is larger than the 0 bytes"}},
}

var rejectHeaderText = []rejectCase{
	{"invalid utf8", build("{\"a\xff\":1}", ""), []string{"header is not valid UTF-8", "offset 3"}},
	{"truncated utf8", build("{\"\xe2\x82\"}", ""), []string{"not valid UTF-8"}},
	{"not json", build(`{"a":}`, ""), []string{"header is not valid JSON"}},
	{"missing comma", build(`{"__metadata__":{"a":"b"} "x":{}}`, ""), []string{"not valid JSON"}},
	{"unclosed", build(`{"__metadata__":{"a":"b"}`, ""), []string{"header JSON ends before the object is closed"}},
	{"array", build(`[1,2]`, ""), []string{"header must start with '{'", `'['`}},
	{"string", build(`"{}"`, ""), []string{"header must start with '{'"}},
	{"leading space", build(` {}`, ""), []string{"header must start with '{'", `' '`}},
	{"lone high surrogate", build(`{"__metadata__":{"\ud800":"x"}}`, ""), []string{"lone UTF-16 surrogate", `\ud800`}},
	{"lone low surrogate", build(`{"__metadata__":{"k":"\udc00"}}`, ""), []string{"lone UTF-16 surrogate", `\udc00`}},
	{"two low surrogates", build(`{"__metadata__":{"k":"\udc00\udc00"}}`, ""), []string{"lone UTF-16 surrogate", `\udc00`}},
	{"two high surrogates", build(`{"__metadata__":{"k":"\ud800\ud800"}}`, ""), []string{"lone UTF-16 surrogate", `\ud800`}},
	{"raw control character", build("{\"__metadata__\":{\"k\":\"a\x1fb\"}}", ""), []string{"not valid JSON", "no control characters in a string", "header offset 23"}},
	{"raw tab in name", build("{\"a\tb\":{}}", ""), []string{"not valid JSON", "control characters"}},
	{"form feed as space", build("{\"__metadata__\"\f:{}}", ""), []string{"not valid JSON", "expected ':'", `'\f'`}},
	{"vertical tab as space", build("{\v}", ""), []string{"not valid JSON", `'\v'`}},
	{"bad escape", build(`{"__metadata__":{"k":"\x41"}}`, ""), []string{"not valid JSON", "after '\\' in a string"}},
	{"short unicode escape", build(`{"__metadata__":{"k":"\u12"}}`, ""), []string{"not valid JSON", "four hex digits"}},
	{"leading zero", build(`{"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}`, zeros(1)), []string{"not valid JSON", "expected ',' or ']'", "'1'"}},
	{"double zero", build(`{"a":{"dtype":"U8","shape":[00],"data_offsets":[0,0]}}`, ""), []string{"not valid JSON", "expected ',' or ']'", "'0'"}},
	{"trailing comma", build(`{"__metadata__":{"k":"v",}}`, ""), []string{"not valid JSON", "expected a string key", "'}'"}},
	{"single quotes", build(`{'a':1}`, ""), []string{"not valid JSON", "expected a string key"}},
	{"high then non-low", build(`{"__metadata__":{"k":"\ud800\u0041"}}`, ""), []string{"lone UTF-16 surrogate"}},
}

var rejectTrailing = []rejectCase{
	{"letter", build(`{}x`, ""), []string{`'x'`, "header offset 2", "after the JSON object", "only spaces (0x20) may pad it"}},
	{"newline", build("{}\n", ""), []string{`'\n'`, "only spaces"}},
	{"tab after spaces", build("{}  \t", ""), []string{`'\t'`, "header offset 4"}},
	{"nul padding", build("{}\x00\x00", ""), []string{`'\x00'`, "only spaces"}},
	{"second object", build(`{} {}`, ""), []string{`'{'`, "header offset 3", "after the JSON object"}},
}

var rejectDuplicateKeys = []rejectCase{
	{"tensor name", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, zeros(2)),
		[]string{`duplicate key "a" in the header`, "tensor name"}},
	{"metadata twice", build(`{"__metadata__":{},"__metadata__":{"a":"b"}}`, ""), []string{`duplicate key "__metadata__" in the header`}},
	{"dtype twice", build(`{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, zeros(1)),
		[]string{`duplicate key "dtype"`, `tensor "a"`}},
	{"data_offsets twice", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"data_offsets":[0,1]}}`, zeros(1)),
		[]string{`duplicate key "data_offsets"`, `tensor "a"`}},
	{"dtype in other case", build(`{"a":{"dtype":"U8","DtYpe":"I8","shape":[1],"data_offsets":[0,1]}}`, zeros(1)),
		[]string{`tensor "a": key "DtYpe" differs from "dtype" only in case`}},
	{"shape with long s", build(`{"a":{"dtype":"U8","shape":[1],"ſhape":[2],"data_offsets":[0,1]}}`, zeros(1)),
		[]string{`tensor "a": key "ſhape" differs from "shape" only in case`}},
	{"data_offsets in upper case", build(`{"a":{"dtype":"U8","shape":[1],"DATA_OFFSETS":[0,1]}}`, zeros(1)),
		[]string{`tensor "a": key "DATA_OFFSETS" differs from "data_offsets" only in case`}},
	{"in metadata", build(`{"__metadata__":{"k":"1","k":"2"}}`, ""), []string{`duplicate key "k" in __metadata__`}},
	{"in unknown field", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[{"y":1,"y":2}]}}`, zeros(1)),
		[]string{`duplicate key "y" in the unknown field "x" of tensor "a"`}},
}

var rejectMetadata = []rejectCase{
	{"array", build(`{"__metadata__":["a"]}`, ""), []string{"__metadata__ must be a JSON object of string values", "found a JSON array"}},
	{"string", build(`{"__metadata__":"a"}`, ""), []string{"__metadata__ must be a JSON object", "found a string"}},
	{"null", build(`{"__metadata__":null}`, ""), []string{"__metadata__ must be a JSON object", "found null"}},
	{"number value", build(`{"__metadata__":{"epoch":3}}`, ""), []string{`__metadata__ value for key "epoch" must be a string`, "the number 3"}},
	{"null value", build(`{"__metadata__":{"k":null}}`, ""), []string{`value for key "k" must be a string`, "found null"}},
	{"object value", build(`{"__metadata__":{"k":{}}}`, ""), []string{`value for key "k" must be a string`, "found a JSON object"}},
	{"bool value", build(`{"__metadata__":{"k":true}}`, ""), []string{`value for key "k" must be a string`, "a boolean"}},
}

var rejectFields = []rejectCase{
	{"no dtype", build(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, zeros(1)), []string{`tensor "a": entry has no "dtype" field`}},
	{"no shape", build(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, zeros(1)), []string{`tensor "a": entry has no "shape" field`}},
	{"no data_offsets", build(`{"a":{"dtype":"U8","shape":[1]}}`, zeros(1)), []string{`tensor "a": entry has no "data_offsets" field`}},
	{"empty entry", build(`{"a":{}}`, ""), []string{`tensor "a": entry has no "dtype" field`}},
	{"entry not object", build(`{"a":[1]}`, ""), []string{`tensor "a": entry must be a JSON object`, "found a JSON array"}},
	{"entry null", build(`{"a":null}`, ""), []string{`tensor "a": entry must be a JSON object`, "found null"}},
	{"unknown dtype", build(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, zeros(16)), []string{`tensor "a": unknown dtype "F128"`}},
	{"lowercase dtype", build(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), []string{`unknown dtype "f32"`}},
	{"dtype number", build(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, zeros(4)), []string{`tensor "a": dtype must be a string`, "the number 4"}},
	{"unknown field too deep", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}}`, zeros(1)),
		[]string{`the unknown field "x" of tensor "a" is nested deeper than 64 levels`}},
}

var rejectShape = []rejectCase{
	{"negative", build(`{"a":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]}}`, ""), []string{`tensor "a": shape dimension 1 is -1`, "non-negative integer"}},
	{"minus zero", build(`{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}`, ""), []string{`shape dimension 0 is -0`, "non-negative integer"}},
	{"fraction", build(`{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, zeros(1)), []string{`tensor "a": shape dimension 0 is 1.5, not an integer`}},
	{"integral fraction", build(`{"a":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}`, zeros(2)), []string{`shape dimension 0 is 2.0, not an integer`}},
	{"exponent", build(`{"a":{"dtype":"U8","shape":[1e1],"data_offsets":[0,10]}}`, zeros(10)), []string{`shape dimension 0 is 1e1, not an integer`}},
	{"string dim", build(`{"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}`, zeros(1)), []string{`shape dimension 0 must be a non-negative integer`, "found a string"}},
	{"nested dim", build(`{"a":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}}`, zeros(1)), []string{`shape dimension 0 must be a non-negative integer`, "found a JSON array"}},
	{"not array", build(`{"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}`, zeros(1)), []string{`tensor "a": shape must be a JSON array`, "the number 1"}},
	{"dim too large", build(`{"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}}`, ""), []string{`shape dimension 0 is 9223372036854775808, larger than the maximum`}},
	{"product overflow", build(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, ""), []string{`tensor "a": shape [4294967296 4294967296] of dtype U8 overflows`}},
	{"byte size overflow", build(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, ""), []string{`tensor "a": shape [2305843009213693952] of dtype F64 overflows`}},
	{"too many dimensions", build(`{"a":{"dtype":"U8","shape":[`+strings.Repeat("1,", 1024)+`1],"data_offsets":[0,1]}}`, zeros(1)), []string{`tensor "a": shape has more than 1024 dimensions`}},
	{"overflow beside zero", build(`{"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}`, ""), []string{"overflows"}},
}

var rejectOffsets = []rejectCase{
	{"not array", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":0}}`, zeros(1)), []string{`tensor "a": data_offsets must be a JSON array`}},
	{"one value", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1]}}`, zeros(1)), []string{`tensor "a": data_offsets must hold exactly two integers [begin, end], found 1`}},
	{"empty", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[]}}`, zeros(1)), []string{`data_offsets must hold exactly two integers`, "found 0"}},
	{"three values", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, zeros(1)), []string{`data_offsets must hold exactly two integers`, "found more"}},
	{"negative begin", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, zeros(1)), []string{`tensor "a": data_offsets begin is -1`, "non-negative integer"}},
	{"fraction end", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1.0]}}`, zeros(1)), []string{`data_offsets end is 1.0, not an integer`}},
	{"string", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":["0","1"]}}`, zeros(1)), []string{`data_offsets begin must be a non-negative integer`, "found a string"}},
	{"begin after end", build(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, zeros(1)), []string{`tensor "a": data_offsets [1, 0] have begin after end`}},
	{"too large", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]}}`, zeros(1)), []string{`data_offsets end is 99999999999999999999, larger than the maximum`}},
}

var rejectByteLength = []rejectCase{
	{"short", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, zeros(4)), []string{`tensor "a": data_offsets [0, 4] span 4 bytes but shape [2] of dtype F32 needs 8 bytes`}},
	{"long", build(`{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}}`, zeros(16)), []string{`span 16 bytes but shape [2 2] of dtype BF16 needs 8 bytes`}},
	{"zero size with bytes", build(`{"a":{"dtype":"F32","shape":[3,0],"data_offsets":[0,4]}}`, zeros(4)), []string{`span 4 bytes but shape [3 0] of dtype F32 needs 0 bytes`}},
	{"scalar", build(`{"a":{"dtype":"I64","shape":[],"data_offsets":[0,4]}}`, zeros(4)), []string{`shape [] of dtype I64 needs 8 bytes`}},
}

var rejectLayout = []rejectCase{
	{"overlap", build(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, zeros(6)),
		[]string{`tensor "b": data_offsets [2, 6] overlap tensor "a" at [0, 4]`}},
	{"one byte overlap", build(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[3,7]}}`, zeros(7)),
		[]string{`tensor "b": data_offsets [3, 7] overlap tensor "a" at [0, 4]`}},
	{"same range", build(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, zeros(4)),
		[]string{`tensor "b": data_offsets [0, 4] overlap tensor "a"`}},
	{"empty tensor inside another", build(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}`, zeros(4)),
		[]string{`tensor "z": data_offsets [2, 2] overlap tensor "a"`}},
	{"hole at start", build(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, zeros(6)),
		[]string{`tensor "a": data_offsets begin 2 leaves a hole of 2 bytes at the start of the data buffer`}},
	{"hole after empty tensor", build(`{"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, zeros(4)),
		[]string{`tensor "a": data_offsets begin 2 leaves a hole of 2 bytes at the start of the data buffer`}},
	{"hole between", build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[5,7]}}`, zeros(7)),
		[]string{`tensor "b": data_offsets begin 5 leaves a hole of 3 bytes after tensor "a", which ends at 2`}},
	{"trailing bytes", build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, zeros(2)+"PK\x03\x04payload"),
		[]string{"11 trailing bytes after the last tensor", "data buffer is 13 bytes", "tensors end at 2"}},
	{"data but no tensors", build(`{}`, "x"), []string{"1 trailing bytes after the last tensor"}},
	{"one past end of data", build(`{"a":{"dtype":"U8","shape":[5],"data_offsets":[0,5]}}`, zeros(4)),
		[]string{`tensor "a": data_offsets end 5 is past the end of the data buffer (4 bytes)`}},
	{"past end of data", build(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, zeros(4)),
		[]string{`tensor "a": data_offsets end 8 is past the end of the data buffer (4 bytes)`}},
}

var rejectNames = []rejectCase{
	{"empty name", build(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, zeros(1)), []string{"tensor name is empty"}},
	{"metadata as tensor", build(`{"__metadata__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, zeros(1)),
		[]string{`__metadata__ value for key "shape" must be a string`, "__metadata__ is reserved and cannot be a tensor"}},
}

func TestRejectShortFile(t *testing.T)     { checkRejects(t, rejectShortFile) }
func TestRejectHeaderLength(t *testing.T)  { checkRejects(t, rejectHeaderLength) }
func TestRejectHeaderText(t *testing.T)    { checkRejects(t, rejectHeaderText) }
func TestRejectTrailing(t *testing.T)      { checkRejects(t, rejectTrailing) }
func TestRejectDuplicateKeys(t *testing.T) { checkRejects(t, rejectDuplicateKeys) }
func TestRejectMetadata(t *testing.T)      { checkRejects(t, rejectMetadata) }
func TestRejectFields(t *testing.T)        { checkRejects(t, rejectFields) }
func TestRejectShape(t *testing.T)         { checkRejects(t, rejectShape) }
func TestRejectOffsets(t *testing.T)       { checkRejects(t, rejectOffsets) }
func TestRejectByteLength(t *testing.T)    { checkRejects(t, rejectByteLength) }
func TestRejectLayout(t *testing.T)        { checkRejects(t, rejectLayout) }
func TestRejectNames(t *testing.T)         { checkRejects(t, rejectNames) }

func allRejectCases() []rejectCase {
	var all []rejectCase
	for _, table := range [][]rejectCase{
		rejectShortFile, rejectHeaderLength, rejectHeaderText, rejectTrailing,
		rejectDuplicateKeys, rejectMetadata, rejectFields, rejectShape,
		rejectOffsets, rejectByteLength, rejectLayout, rejectNames,
	} {
		all = append(all, table...)
	}
	return all
}

// acceptCases are edge cases the rules must not refuse.
var acceptCases = []struct {
	name string
	file []byte
}{
	{"empty object", build(`{}`, "")},
	{"space padding", build(`{}      `, "")},
	{"metadata only", build(`{"__metadata__":{}}`, "")},
	{"json whitespace inside", build("{ \"a\" :\n\t{\"dtype\" : \"U8\", \"shape\": [ 2 ] ,\"data_offsets\":[0 ,2]} }  ", zeros(2))},
	{"zero-size tensors", build(`{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"z":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}`, zeros(1))},
	{"only zero-size", build(`{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, "")},
	{"unknown field", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"note":{"x":[1,"y",null]}}}`, zeros(1))},
	{"escaped name", build(`{"a\"\\\u00e9\ud83d\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, zeros(1))},
	{"scalar", build(`{"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}`, zeros(4))},
	{"1024 dimensions", build(`{"a":{"dtype":"U8","shape":[`+strings.Repeat("1,", 1023)+`1],"data_offsets":[0,1]}}`, zeros(1))},
	{"big zero dims", build(`{"a":{"dtype":"U8","shape":[0,9223372036854775807],"data_offsets":[0,0]}}`, "")},
}

func TestAcceptEdgeCases(t *testing.T) {
	for _, c := range acceptCases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(c.file); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

// TestLongNamesAreShortened checks that a hostile name cannot blow up the
// size of an error message.
func TestLongNamesAreShortened(t *testing.T) {
	long := strings.Repeat("é", 100000)
	dims := strings.TrimSuffix(strings.Repeat("1,", 1000), ",")
	cases := [][]byte{
		build(`{"`+long+`":{"dtype":"U8","shape":[1],"data_offsets":[0,2]}}`, zeros(2)),
		build(`{"a":{"dtype":"`+long+`","shape":[1],"data_offsets":[0,1]}}`, zeros(1)),
		build(`{"__metadata__":{"`+long+`":1}}`, ""),
		build(`{"a":{"dtype":"U8","shape":[`+dims+`],"data_offsets":[0,2]}}`, zeros(2)),
		build(`{"a":{"dtype":"U8","shape":[1`+strings.Repeat("0", 100000)+`],"data_offsets":[0,2]}}`, zeros(2)),
	}
	for i, c := range cases {
		_, err := Parse(c)
		if err == nil {
			t.Fatalf("case %d accepted", i)
		}
		if len(err.Error()) > 600 {
			t.Errorf("case %d: error message is %d bytes: %.300s", i, len(err.Error()), err)
		}
		if !strings.Contains(err.Error(), "...(") {
			t.Errorf("case %d: error does not say it was shortened: %.300s", i, err)
		}
	}
	// Cut on a rune boundary: the message stays valid UTF-8.
	_, err := Parse(cases[0])
	if !utf8.ValidString(err.Error()) || !strings.Contains(err.Error(), "(200000 bytes)") {
		t.Errorf("error = %.400s", err)
	}
}
