//go:build !linux

package drill

import "fmt"

func mountTmpfs(dir string, size int64) error {
	return fmt.Errorf("%w: this drill mounts a Linux tmpfs", errNoMount)
}

func unmount(dir string) error { return nil }

func freeBytes(dir string) (int64, error) { return 0, errNoMount }
