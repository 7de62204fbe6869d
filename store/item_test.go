package store

import (
	"strings"
	"testing"
	"unsafe"
)

// newItem keeps a key of up to inlineKey bytes in its pair's own
// allocation (the cache line a tree comparison loads anyway) and a longer
// one as given; either way the item holds the key and value it was given.
func TestNewItemInlinesShortKeys(t *testing.T) {
	val := []byte("v")
	for n := 1; n <= inlineKey+8; n++ {
		key := strings.Repeat("k", n-1) + string(rune('a'+n%26))
		it := newItem(key, val)
		if it.p.key != key || &it.p.val[0] != &val[0] || it.pre != keyPrefix(key) {
			t.Fatalf("len %d: item holds %q %q, want %q %q", n, it.p.key, it.p.val, key, val)
		}
		start := uintptr(unsafe.Pointer(it.p))
		data := uintptr(unsafe.Pointer(unsafe.StringData(it.p.key)))
		inside := data >= start && data < start+unsafe.Sizeof(pairInline{})
		if inside != (n <= inlineKey) {
			t.Fatalf("len %d: key inside its pair = %v, want %v", n, inside, n <= inlineKey)
		}
	}
	if unsafe.Sizeof(pairInline{}) != 64 {
		t.Fatalf("pairInline is %d bytes: no longer one 64-byte allocation", unsafe.Sizeof(pairInline{}))
	}
}
