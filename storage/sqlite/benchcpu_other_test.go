//go:build !unix

package sqlite

import (
	"testing"
	"time"
)

// processCPU is not measured here: the CPU metric reads 0.
func processCPU(*testing.B) time.Duration { return 0 }
