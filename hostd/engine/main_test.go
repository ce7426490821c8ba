package engine

import (
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

func TestMain(m *testing.M) { testimg.Main(m) }
