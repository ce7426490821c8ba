package ami

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
)

// blockRetries is the attempts per request (throttling and server errors)
// when the configuration does not give a retryer.
const blockRetries = 8

// SDKClients are the clients of one AWS configuration
// (config.LoadDefaultConfig: the environment, ~/.aws, SSO, IMDS...), with
// the region set per call: the SDK's EBS client, and our EC2 Query API
// client signed and retried by the SDK's signer and retryer.
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

// EC2 returns the EC2 Query API client of region.
func (s SDKClients) EC2(region string) EC2 {
	c := &queryClient{
		endpoint: ec2Endpoint(aws.ToString(s.Config.BaseEndpoint), region),
		region:   region,
		creds:    s.Config.Credentials,
		http:     s.Config.HTTPClient,
		signer:   v4.NewSigner(),
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if s.Config.Retryer != nil {
		c.retryer = s.Config.Retryer()
	} else {
		c.retryer = retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = blockRetries })
	}
	if c.creds == nil {
		c.creds = aws.AnonymousCredentials{}
	}
	return c
}
