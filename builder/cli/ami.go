package cli

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/builder/ami"
)

// newAMICmd is `builder ami`: a build's disk.raw as an EC2 AMI.
func newAMICmd(d Deps) *cobra.Command {
	var o ami.Options
	var profile string
	var tags []string
	cmd := &cobra.Command{
		Use:   "ami [--region R] [--copy-to R]... [--share ACCOUNT]... [--tag K=V]... [--dry-run] out/<name>",
		Short: "Upload a build's disk.raw as an EBS snapshot and register it as an AMI",
		Long: "Uploads out/<name>/disk.raw to a new EBS snapshot through the EBS direct APIs (no S3\n" +
			"bucket, no vmimport role): only its non-zero 512 KiB blocks, with their SHA-256, in\n" +
			"parallel. An interrupted upload is resumed by running the command again\n" +
			"(out/<name>/" + ami.StateFile + " lists the snapshot and the blocks sent). Then registers\n" +
			"the AMI (x86_64, ENA, boot mode uefi-preferred, IMDSv2 only, root " + ami.RootDevice + "),\n" +
			"copies it to the --copy-to regions, shares it with the --share accounts, and records the\n" +
			"AMI ids in out/<name>/" + ami.RecordFile + ". A version that already has an AMI (by name) in a\n" +
			"region is left alone. Credentials and region come from the AWS SDK's default chain\n" +
			"(AWS_* variables, ~/.aws/config and credentials, SSO, instance roles).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.OutDir = args[0]
			o.Progress = cmd.OutOrStdout()
			o.Log = d.Log
			o.Tags = map[string]string{}
			for _, t := range tags {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return fmt.Errorf("--tag %q: want KEY=VALUE", t)
				}
				o.Tags[k] = v
			}
			var opts []func(*config.LoadOptions) error
			if profile != "" {
				opts = append(opts, config.WithSharedConfigProfile(profile))
			}
			if o.Region != "" {
				opts = append(opts, config.WithRegion(o.Region))
			}
			cfg, err := config.LoadDefaultConfig(cmd.Context(), opts...)
			if err != nil {
				return fmt.Errorf("loading the AWS configuration: %w", err)
			}
			o.Region = cfg.Region
			res, err := ami.Publish(cmd.Context(), ami.SDKClients{Config: cfg}, o)
			if err != nil {
				return err
			}
			for _, img := range res.Images {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", img.Region, img.ImageID)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Region, "region", "", "region to upload to and register in (default: the AWS configuration's)")
	fl.StringVar(&profile, "profile", "", "AWS configuration profile (default $AWS_PROFILE or default)")
	fl.StringArrayVar(&o.CopyTo, "copy-to", nil, "also copy the AMI to this region, repeatable")
	fl.StringArrayVar(&o.Share, "share", nil, "grant launch permission to this AWS account ID, repeatable")
	fl.StringArrayVar(&tags, "tag", nil, "KEY=VALUE tag on the snapshot and AMI, repeatable")
	fl.IntVar(&o.Jobs, "jobs", 8, "blocks uploaded at once")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print what would be done, call nothing")
	return cmd
}
