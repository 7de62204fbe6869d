package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/kvtool/kvtool/format"
	"github.com/kvtool/kvtool/vfs"
)

// zeroSumData returns data whose record frame at index idx (term 1, type
// typ) has a checksum whose first byte is zero.
func zeroSumData(idx uint64, typ format.FrameType) []byte {
	for k := 0; ; k++ {
		data := fmt.Appendf(nil, "record whose checksum starts with a zero byte, try %d", k)
		p := binary.LittleEndian.AppendUint64(nil, idx)
		p = binary.LittleEndian.AppendUint64(p, 1)
		if frame := format.AppendFrame(nil, typ, append(p, data...)); frame[0] == 0 {
			return data
		}
	}
}

// TestIntactRecordWithZeroFirstByteAfterDamage damages a record of the
// newest segment that is followed by an intact record whose first byte (the
// checksum's low byte) is zero. That is corruption, not a torn tail: repair
// must refuse without force, and a forced repair must report the intact
// record among the indexes it removed. (Found by the mid-log-corruption
// drill: the scan for intact records skipped every offset holding a zero
// byte, so about one damaged log in 256 was cut as a torn tail, or reported
// one index too few.)
func TestIntactRecordWithZeroFirstByteAfterDamage(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, memOpts(fs, 4096))
	appendN(t, l, 2)
	if _, err := l.Append(entryType(3), zeroSumData(3, entryType(3))); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fr, _ := frames(t, fs, segPath(1))
	damage(t, fs, segPath(1), func(b []byte) []byte {
		if b[fr[2].start] != 0 {
			t.Fatalf("record 3's frame starts with %#x, want 0", b[fr[2].start])
		}
		b[fr[1].start+20]++
		return b
	})
	onlyProblem(t, fs, Corruption, fr[1].start)
	if _, err := Repair(fs, testDir, RepairOptions{}); !errors.Is(err, ErrNeedsForce) {
		t.Fatalf("Repair without force: %v, want ErrNeedsForce", err)
	}
	res, err := Repair(fs, testDir, RepairOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	// The cut must list index 3; whether it lists the damaged record 2 as
	// well (a repair that knows where indexes are expected) or leaves it
	// implied by the log's new end is the repair's choice.
	if c := res.Cuts; len(c) != 1 || (c[0].FirstLostIndex != 2 && c[0].FirstLostIndex != 3) || c[0].LastLostIndex != 3 || res.LastIndex != 1 {
		t.Fatalf("forced repair: log ends at %d, cuts %+v; want it to end at 1 and report index 3 removed", res.LastIndex, res.Cuts)
	}
}
