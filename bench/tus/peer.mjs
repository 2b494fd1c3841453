// The peer bench/tus.sh measures against: @tus/server (tus 1.0.0) on a
// loopback port, with @tus/file-store (a directory) or @tus/s3-store (a
// bucket on the bench's radosgw). Prints its port on stdout once listening.
//   node peer.mjs file DIR
//   node peer.mjs s3 BUCKET   (S3 settings from S3UP_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';
import { S3Store } from '@tus/s3-store';

const [kind, where] = process.argv.slice(2);
const datastore = kind === 'file'
  ? new FileStore({ directory: where })
  : new S3Store({
    partSize: 8 * 1024 * 1024,  // s3uploader's default part size
    s3ClientConfig: {
      bucket: where,
      endpoint: process.env.S3UP_S3_ENDPOINT,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
      // radosgw 16 refuses the SDK's default request checksums (411).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
  });
const server = new Server({ path: '/files', datastore });
const listening = server.listen(0, '127.0.0.1', () => console.log(listening.address().port));
