// The C interface of camjpeg's libjpeg-turbo side (turbo.c); see
// turbo_cgo.go for how Go drives it.
#ifndef CAMJPEG_TURBO_H
#define CAMJPEG_TURBO_H

#include <stddef.h>
#include <stdio.h>

#if defined(__has_include)
#if !__has_include(<jconfig.h>)
#error "libjpeg-turbo's headers for this architecture are missing: apt-get install libjpeg62-turbo-dev (a native build), scripts/cross-libjpeg.sh fetch arm64|armhf (a cross build), or build with -tags nolibjpeg (pure-Go JPEG)"
#endif
#endif
#include <jpeglib.h>

// cj_planes describes a decoded image: ncomp planes (1: grey, 3: YCbCr)
// owned by the cj_state, valid until its next call. w and h are each
// plane's size in samples (chroma may be at luma resolution: see turbo.c),
// ew and eh how far into them the picture reaches (a 641-pixel-wide image
// at 1/4 is 161 samples wide, of which 160.25 are picture); stride is at
// least w. width and height are the full-size image's.
typedef struct {
	const unsigned char *p[3];
	int stride[3], w[3], h[3];
	double ew[3], eh[3];
	int ncomp;
	int width, height;
} cj_planes;

typedef struct cj_state cj_state;

cj_state *cj_new(void);
void cj_free(cj_state *st);
// The last encode's output, valid until the state's next call.
const unsigned char *cj_out(cj_state *st);
size_t cj_outlen(cj_state *st);
const char *cj_msg(cj_state *st);

int cj_encode_planes(cj_state *st, const unsigned char *y, const unsigned char *cb, const unsigned char *cr,
                     int ystride, int cstride, int w, int h, int hs, int vs, int quality);
int cj_encode_yuyv(cj_state *st, const unsigned char *p, int stride, int w, int h, int quality);
int cj_encode_nv12(cj_state *st, const unsigned char *y, int ystride, const unsigned char *uv, int uvstride,
                   int w, int h, int quality);
// cj_decode_scaled returns 0 with the planes, 1 when the image is not grey
// or YCbCr (CMYK, Adobe RGB) or has a vertical sampling factor above 2 (the
// caller decodes it another way), -1 on error.
// cj_decoded is where it puts them.
int cj_decode_scaled(cj_state *st, const unsigned char *src, unsigned long n, int minh);
const cj_planes *cj_decoded(cj_state *st);

#endif
