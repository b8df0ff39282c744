package goclient

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// A MessagePack writer for the values cty sends (its own, small, so the test shares no code with
// the plugin's decoder).
func encodeMsgpack(b *bytes.Buffer, v interface{}) {
	switch x := v.(type) {
	case nil:
		b.WriteByte(0xc0)
	case bool:
		if x {
			b.WriteByte(0xc3)
		} else {
			b.WriteByte(0xc2)
		}
	case int:
		if x >= 0 && x < 128 {
			b.WriteByte(byte(x))
		} else {
			b.WriteByte(0xd3)
			binary.Write(b, binary.BigEndian, int64(x))
		}
	case float64:
		b.WriteByte(0xcb)
		binary.Write(b, binary.BigEndian, x)
	case string:
		writeLen(b, len(x), 0xa0, 32, 0xd9, 0xda, 0xdb)
		b.WriteString(x)
	case []interface{}:
		writeLen(b, len(x), 0x90, 16, 0, 0xdc, 0xdd)
		for _, item := range x {
			encodeMsgpack(b, item)
		}
	case []string:
		items := make([]interface{}, len(x))
		for i, s := range x {
			items[i] = s
		}
		encodeMsgpack(b, items)
	case map[string]interface{}:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeLen(b, len(x), 0x80, 16, 0, 0xde, 0xdf)
		for _, k := range keys {
			encodeMsgpack(b, k)
			encodeMsgpack(b, x[k])
		}
	case map[string]string:
		m := map[string]interface{}{}
		for k, s := range x {
			m[k] = s
		}
		encodeMsgpack(b, m)
	default:
		panic("msgpack: unsupported value")
	}
}

// writeLen writes a length prefix: fix form below `fixMax`, else 8 (if `c8`), 16 or 32 bits.
func writeLen(b *bytes.Buffer, n int, fix byte, fixMax int, c8, c16, c32 byte) {
	switch {
	case n < fixMax:
		b.WriteByte(fix | byte(n))
	case c8 != 0 && n < 256:
		b.WriteByte(c8)
		b.WriteByte(byte(n))
	case n < 65536:
		b.WriteByte(c16)
		binary.Write(b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(c32)
		binary.Write(b, binary.BigEndian, uint32(n))
	}
}
