package drill

import (
	"testing"

	"github.com/kvtool/kvtool/internal/sharedtmp"
)

// TestMain removes the directories the package's tests share (sharedtmp).
func TestMain(m *testing.M) { sharedtmp.Main(m) }
