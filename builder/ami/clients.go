package ami

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// blockRetries is the SDK's attempts per request (throttling and server
// errors) when the configuration does not say.
const blockRetries = 8

// SDKClients are the AWS SDK's clients, from one configuration
// (config.LoadDefaultConfig: the environment, ~/.aws, SSO, IMDS...),
// with the region set per call.
type SDKClients struct{ Config aws.Config }

// EBS returns the EBS direct API client of region.
func (s SDKClients) EBS(region string) EBS {
	return ebs.NewFromConfig(s.Config, func(o *ebs.Options) {
		o.Region = region
		if o.RetryMaxAttempts == 0 && s.Config.Retryer == nil {
			o.RetryMaxAttempts = blockRetries
		}
	})
}

// EC2 returns the EC2 client of region.
func (s SDKClients) EC2(region string) EC2 {
	return ec2.NewFromConfig(s.Config, func(o *ec2.Options) { o.Region = region })
}
