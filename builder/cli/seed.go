package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/spf13/cobra"
)

// newSeedCmd is `builder seed`: a NoCloud seed image, with the same
// arguments as cloud-localds so existing scripts only change the program name.
func newSeedCmd(d Deps) *cobra.Command {
	var format, netConfig, vendorData, hostname, instanceID string
	cmd := &cobra.Command{
		Use:   "seed [-f iso|vfat] [-N network-config] [-V vendor-data] [-H hostname] [-i instance-id] OUT user-data [meta-data]",
		Short: "Write a cloud-init NoCloud seed image (like cloud-localds)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := seed.ParseFormat(format)
			if err != nil {
				return err
			}
			var files seed.Files
			if files.UserData, err = readArg(cmd.InOrStdin(), args[1]); err != nil {
				return err
			}
			if len(args) == 3 {
				if files.MetaData, err = readArg(cmd.InOrStdin(), args[2]); err != nil {
					return err
				}
			}
			if netConfig != "" {
				if files.NetworkConfig, err = readArg(cmd.InOrStdin(), netConfig); err != nil {
					return err
				}
			}
			if vendorData != "" {
				if files.VendorData, err = readArg(cmd.InOrStdin(), vendorData); err != nil {
					return err
				}
			}
			files.MetaData = seedMetaData(files.MetaData, hostname, instanceID)
			if err := seed.Write(args[0], files, f); err != nil {
				return err
			}
			d.Log.Info("seed written", "path", args[0], "format", string(f))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&format, "filesystem", "f", "iso", "filesystem: iso or vfat")
	fl.StringVarP(&netConfig, "network-config", "N", "", "network-config file")
	fl.StringVarP(&vendorData, "vendor-data", "V", "", "vendor-data file")
	fl.StringVarP(&hostname, "hostname", "H", "", "local-hostname in meta-data")
	fl.StringVarP(&instanceID, "instance-id", "i", "", "instance-id in meta-data (default iid-local01)")
	return cmd
}

// readArg reads a file argument; "-" is standard input, as in cloud-localds.
func readArg(stdin io.Reader, path string) ([]byte, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

// seedMetaData builds meta-data the way cloud-localds does: a given file is
// used as is (-H/-i then only apply when there is none); otherwise
// instance-id and local-hostname lines.
func seedMetaData(given []byte, hostname, instanceID string) []byte {
	if given != nil {
		return given
	}
	if instanceID == "" {
		instanceID = "iid-local01"
	}
	md := "instance-id: " + instanceID + "\n"
	if hostname != "" {
		md += "local-hostname: " + hostname + "\n"
	}
	return []byte(md)
}
