//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// tryLock cannot lock here, so temporary files of killed backups are left
// for the operator to remove.
func tryLock(*os.File) (bool, error) { return false, errors.ErrUnsupported }
