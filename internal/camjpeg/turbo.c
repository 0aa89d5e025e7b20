//go:build cgo && !nolibjpeg

// The libjpeg-turbo side of camjpeg: encode from planar or packed YCbCr with
// raw_data_in (no colour conversion, no downsampling pass: the camera's
// chroma is already subsampled) and decode at a reduced DCT scale with
// raw_data_out (the IDCT itself shrinks 8x8 blocks to 4x4, 2x2 or 1x1, so a
// preview never pays for the full-size image). See libjpeg.txt of
// libjpeg-turbo, sections "Raw (downsampled) image data" and "Decompression
// parameter selection" (scale_num/scale_denom).
//
// One cj_state is used by one goroutine at a time (the Go side keeps a free
// list). Errors longjmp back to the entry point of the call that failed;
// no longjmp ever crosses a Go frame.

#include "turbo.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>

struct cj_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
};

struct cj_state {
	struct jpeg_compress_struct c;
	struct jpeg_decompress_struct d;
	struct cj_err cerr, derr;
	struct jpeg_destination_mgr dest;
	int dinit;

	unsigned char *out; // encoded bytes, owned here, grown as needed
	size_t outcap, outlen;

	unsigned char *scratch; // padded rows for the encoder
	size_t scratchcap;
	unsigned char *planes; // decoded planes
	size_t planescap;

	cj_planes dec; // what the last cj_decode_scaled produced

	char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr ci) {
	cj_state *st = (cj_state *)ci->client_data;
	struct cj_err *e = (struct cj_err *)ci->err;
	(*ci->err->format_message)(ci, st->msg);
	longjmp(e->jb, 1);
}

// Corrupt-data warnings (a camera frame cut short) are not printed: the
// decoder fills the rest of the image and the caller sees a whole frame.
static void on_output(j_common_ptr ci) { (void)ci; }

static int grow(unsigned char **p, size_t *cap, size_t need) {
	if (need <= *cap) return 0;
	size_t n = *cap ? *cap : 4096;
	while (n < need) n *= 2;
	unsigned char *q = realloc(*p, n);
	if (!q) return -1;
	*p = q;
	*cap = n;
	return 0;
}

static void dest_init(j_compress_ptr c) {
	cj_state *st = (cj_state *)c->client_data;
	st->dest.next_output_byte = st->out;
	st->dest.free_in_buffer = st->outcap;
}

static boolean dest_empty(j_compress_ptr c) {
	cj_state *st = (cj_state *)c->client_data;
	size_t used = st->outcap;
	if (grow(&st->out, &st->outcap, used * 2) != 0) ERREXIT1(c, JERR_OUT_OF_MEMORY, 10);
	st->dest.next_output_byte = st->out + used;
	st->dest.free_in_buffer = st->outcap - used;
	return TRUE;
}

static void dest_term(j_compress_ptr c) {
	cj_state *st = (cj_state *)c->client_data;
	st->outlen = st->outcap - st->dest.free_in_buffer;
}

cj_state *cj_new(void) {
	cj_state *st = calloc(1, sizeof *st);
	if (!st) return NULL;
	st->c.err = jpeg_std_error(&st->cerr.pub);
	st->cerr.pub.error_exit = on_error;
	st->cerr.pub.output_message = on_output;
	st->c.client_data = st;
	if (setjmp(st->cerr.jb)) {
		free(st);
		return NULL;
	}
	jpeg_create_compress(&st->c);
	st->dest.init_destination = dest_init;
	st->dest.empty_output_buffer = dest_empty;
	st->dest.term_destination = dest_term;
	st->c.dest = &st->dest;
	if (grow(&st->out, &st->outcap, 64 << 10) != 0) {
		jpeg_destroy_compress(&st->c);
		free(st);
		return NULL;
	}
	return st;
}

void cj_free(cj_state *st) {
	if (!st) return;
	jpeg_destroy_compress(&st->c);
	if (st->dinit) jpeg_destroy_decompress(&st->d);
	free(st->out);
	free(st->scratch);
	free(st->planes);
	free(st);
}

const unsigned char *cj_out(cj_state *st) { return st->out; }

size_t cj_outlen(cj_state *st) { return st->outlen; }

const cj_planes *cj_decoded(cj_state *st) { return &st->dec; }

const char *cj_msg(cj_state *st) { return st->msg; }

// The source of one encode: three planes, packed YUYV, or NV12 (a Y plane
// and one interleaved CbCr plane).
enum { SRC_PLANES, SRC_YUYV, SRC_NV12 };

typedef struct {
	int kind;
	const unsigned char *p[3];
	int stride[3];
} src_t;

// fill_row writes component ci's row y (already clamped to the image) into
// dst, padded to padw samples by repeating the last one.
static void fill_row(const src_t *s, int ci, int y, int cw, int padw, unsigned char *dst) {
	switch (s->kind) {
	case SRC_PLANES:
		memcpy(dst, s->p[ci] + (size_t)y * s->stride[ci], cw);
		break;
	case SRC_YUYV: {
		const unsigned char *r = s->p[0] + (size_t)y * s->stride[0];
		if (ci == 0) {
			for (int x = 0; x < cw; x++) dst[x] = r[2 * x];
		} else {
			const unsigned char *q = r + (ci == 1 ? 1 : 3);
			for (int x = 0; x < cw; x++) dst[x] = q[4 * x];
		}
		break;
	}
	case SRC_NV12:
		if (ci == 0) {
			memcpy(dst, s->p[0] + (size_t)y * s->stride[0], cw);
		} else {
			const unsigned char *q = s->p[1] + (size_t)y * s->stride[1] + (ci - 1);
			for (int x = 0; x < cw; x++) dst[x] = q[2 * x];
		}
		break;
	}
	for (int x = cw; x < padw; x++) dst[x] = dst[cw - 1];
}

// deint_yuyv splits one packed YUYV row of w pixels (w even) into its Y,
// Cb and Cr rows, padded to ypad and cpad samples by repetition.
static void deint_yuyv(const unsigned char *restrict row, int w, unsigned char *restrict y,
                       unsigned char *restrict cb, unsigned char *restrict cr, int ypad, int cpad) {
	int cw = w / 2;
	for (int x = 0; x < cw; x++) {
		y[2 * x] = row[4 * x];
		cb[x] = row[4 * x + 1];
		y[2 * x + 1] = row[4 * x + 2];
		cr[x] = row[4 * x + 3];
	}
	for (int x = w; x < ypad; x++) y[x] = y[w - 1];
	for (int x = cw; x < cpad; x++) {
		cb[x] = cb[cw - 1];
		cr[x] = cr[cw - 1];
	}
}

// encode compresses w x h pixels whose luma is sampled hs x vs times as
// densely as chroma (ncomp 1: grey). Rows are pointed at in place when the
// source is planar and wide enough; otherwise they are copied into padded
// scratch rows.
static int encode(cj_state *st, const src_t *s, int w, int h, int ncomp, int hs, int vs, int quality) {
	struct jpeg_compress_struct *c = &st->c;
	if (setjmp(st->cerr.jb)) {
		jpeg_abort_compress(c);
		return -1;
	}
	c->image_width = w;
	c->image_height = h;
	c->input_components = ncomp;
	c->in_color_space = ncomp == 1 ? JCS_GRAYSCALE : JCS_YCbCr;
	jpeg_set_defaults(c);
	jpeg_set_quality(c, quality, TRUE);
	c->raw_data_in = TRUE;
	c->dct_method = JDCT_ISLOW;
	if (ncomp == 3) {
		c->comp_info[0].h_samp_factor = hs;
		c->comp_info[0].v_samp_factor = vs;
		for (int i = 1; i < 3; i++) c->comp_info[i].h_samp_factor = c->comp_info[i].v_samp_factor = 1;
	} else {
		c->comp_info[0].h_samp_factor = c->comp_info[0].v_samp_factor = 1;
		hs = vs = 1;
	}
	jpeg_start_compress(c, TRUE);

	int cw[3], ch[3], padw[3], rows[3];
	int copy[3];
	size_t need = 0, off[3];
	for (int ci = 0; ci < ncomp; ci++) {
		jpeg_component_info *cp = &c->comp_info[ci];
		int fh = ci == 0 ? 1 : hs, fv = ci == 0 ? 1 : vs;
		cw[ci] = (w + fh - 1) / fh;
		ch[ci] = (h + fv - 1) / fv;
		padw[ci] = cp->width_in_blocks * DCTSIZE;
		rows[ci] = cp->v_samp_factor * DCTSIZE;
		copy[ci] = s->kind != SRC_PLANES || padw[ci] > cw[ci];
		if (s->kind == SRC_NV12 && ci == 0) copy[ci] = padw[0] > cw[0];
		off[ci] = need;
		if (copy[ci]) need += (size_t)padw[ci] * rows[ci];
	}
	if (grow(&st->scratch, &st->scratchcap, need + 1) != 0) ERREXIT1(c, JERR_OUT_OF_MEMORY, 11);

	JSAMPROW r0[2 * DCTSIZE], r1[DCTSIZE], r2[DCTSIZE];
	JSAMPROW *rp[3] = {r0, r1, r2};
	JSAMPARRAY planes[3] = {r0, r1, r2};
	while (c->next_scanline < c->image_height) {
		int mcu = c->next_scanline / (vs * DCTSIZE);
		if (s->kind == SRC_YUYV) {
			// One pass over each packed row fills all three planes' rows
			// (4:2:2 has as many chroma rows as luma rows).
			for (int r = 0; r < DCTSIZE; r++) {
				int y = mcu * DCTSIZE + r;
				if (y >= h) y = h - 1;
				rp[0][r] = st->scratch + off[0] + (size_t)r * padw[0];
				rp[1][r] = st->scratch + off[1] + (size_t)r * padw[1];
				rp[2][r] = st->scratch + off[2] + (size_t)r * padw[2];
				deint_yuyv(s->p[0] + (size_t)y * s->stride[0], w, rp[0][r], rp[1][r], rp[2][r], padw[0], padw[1]);
			}
			jpeg_write_raw_data(c, planes, DCTSIZE);
			continue;
		}
		for (int ci = 0; ci < ncomp; ci++) {
			for (int r = 0; r < rows[ci]; r++) {
				int y = mcu * rows[ci] + r;
				if (y >= ch[ci]) y = ch[ci] - 1;
				if (copy[ci]) {
					unsigned char *d = st->scratch + off[ci] + (size_t)r * padw[ci];
					fill_row(s, ci, y, cw[ci], padw[ci], d);
					rp[ci][r] = d;
				} else {
					rp[ci][r] = (JSAMPROW)(s->p[ci] + (size_t)y * s->stride[ci]);
				}
			}
		}
		jpeg_write_raw_data(c, planes, vs * DCTSIZE);
	}
	jpeg_finish_compress(c);
	return 0;
}

int cj_encode_planes(cj_state *st, const unsigned char *y, const unsigned char *cb, const unsigned char *cr,
                     int ystride, int cstride, int w, int h, int hs, int vs, int quality) {
	src_t s = {SRC_PLANES, {y, cb, cr}, {ystride, cstride, cstride}};
	return encode(st, &s, w, h, cb ? 3 : 1, hs, vs, quality);
}

int cj_encode_yuyv(cj_state *st, const unsigned char *p, int stride, int w, int h, int quality) {
	src_t s = {SRC_YUYV, {p, p, p}, {stride, stride, stride}};
	return encode(st, &s, w, h, 3, 2, 1, quality);
}

int cj_encode_nv12(cj_state *st, const unsigned char *y, int ystride, const unsigned char *uv, int uvstride,
                   int w, int h, int quality) {
	src_t s = {SRC_NV12, {y, uv, uv}, {ystride, uvstride, uvstride}};
	return encode(st, &s, w, h, 3, 2, 2, quality);
}

static void drop_src(struct jpeg_decompress_struct *d) {
	// The source manager points into the caller's (Go) buffer: forget it
	// before returning so no pointer to Go memory stays in C memory.
	if (d->src) {
		d->src->next_input_byte = NULL;
		d->src->bytes_in_buffer = 0;
	}
}

int cj_decode_scaled(cj_state *st, const unsigned char *src, unsigned long n, int minh) {
	struct jpeg_decompress_struct *d = &st->d;
	cj_planes *out = &st->dec;
	if (!st->dinit) {
		d->err = jpeg_std_error(&st->derr.pub);
		st->derr.pub.error_exit = on_error;
		st->derr.pub.output_message = on_output;
		d->client_data = st;
		if (setjmp(st->derr.jb)) return -1;
		jpeg_create_decompress(d);
		st->dinit = 1;
	}
	if (setjmp(st->derr.jb)) {
		jpeg_abort_decompress(d);
		drop_src(d);
		return -1;
	}
	jpeg_mem_src(d, src, n);
	jpeg_read_header(d, TRUE);
	int nc = d->num_components;
	int ok = (nc == 1 && d->jpeg_color_space == JCS_GRAYSCALE) || (nc == 3 && d->jpeg_color_space == JCS_YCbCr);
	if (ok && nc == 3) {
		jpeg_component_info *cp = d->comp_info;
		// Any sampling fits the row arrays below (at most two block rows
		// per iMCU row); each plane comes out at its own size.
		for (int i = 0; i < 3; i++) ok = ok && cp[i].h_samp_factor <= 4 && cp[i].v_samp_factor <= 2;
	}
	out->width = d->image_width;
	out->height = d->image_height;
	if (!ok) {
		jpeg_abort_decompress(d);
		drop_src(d);
		return 1;
	}
	int denom = 1;
	for (int k = 8; k > 1; k /= 2) {
		if ((int)((d->image_height + k - 1) / k) >= minh) {
			denom = k;
			break;
		}
	}
	d->scale_num = 1;
	d->scale_denom = denom;
	d->raw_data_out = TRUE;
	d->do_fancy_upsampling = FALSE;
	d->dct_method = JDCT_ISLOW;
	d->out_color_space = d->jpeg_color_space;
	jpeg_start_decompress(d);

	// Each component has its own scaled block size: libjpeg-turbo scales
	// chroma up in the IDCT (2x2 blocks for luma, 4x4 for 4:2:0 chroma at
	// 1/4) rather than upsample it later, so the planes may all come out
	// at luma resolution.
#if JPEG_LIB_VERSION >= 70
	int msz = d->min_DCT_v_scaled_size;
#define COMP_SCALED(cp) ((cp)->DCT_v_scaled_size)
#else
	int msz = d->min_DCT_scaled_size;
#define COMP_SCALED(cp) ((cp)->DCT_scaled_size)
#endif
	size_t need = 0, off[3];
	int stride[3], rows[3];
	for (int ci = 0; ci < nc; ci++) {
		jpeg_component_info *cp = &d->comp_info[ci];
		stride[ci] = cp->width_in_blocks * COMP_SCALED(cp);
		rows[ci] = cp->v_samp_factor * COMP_SCALED(cp);
		off[ci] = need;
		need += (size_t)stride[ci] * rows[ci] * d->total_iMCU_rows;
	}
	if (grow(&st->planes, &st->planescap, need) != 0) ERREXIT1(d, JERR_OUT_OF_MEMORY, 12);

	JSAMPROW r0[2 * DCTSIZE], r1[2 * DCTSIZE], r2[2 * DCTSIZE];
	JSAMPROW *rp[3] = {r0, r1, r2};
	JSAMPARRAY planes[3] = {r0, r1, r2};
	int lines = d->max_v_samp_factor * msz;
	while (d->output_scanline < d->output_height) {
		int mcu = d->output_scanline / lines;
		for (int ci = 0; ci < nc; ci++)
			for (int r = 0; r < rows[ci]; r++)
				rp[ci][r] = st->planes + off[ci] + ((size_t)mcu * rows[ci] + r) * stride[ci];
		if (jpeg_read_raw_data(d, planes, lines) == 0) break; // suspended: data ended
	}
	for (int ci = 0; ci < 3; ci++) {
		int k = ci < nc ? ci : 0;
		out->p[ci] = ci < nc ? st->planes + off[k] : NULL;
		out->stride[ci] = ci < nc ? stride[k] : 0;
		out->w[ci] = ci < nc ? (int)d->comp_info[k].downsampled_width : 0;
		out->h[ci] = ci < nc ? (int)d->comp_info[k].downsampled_height : 0;
		jpeg_component_info *cp = &d->comp_info[k];
		out->ew[ci] = (double)d->image_width * cp->h_samp_factor * COMP_SCALED(cp) / (d->max_h_samp_factor * DCTSIZE);
		out->eh[ci] = (double)d->image_height * cp->v_samp_factor * COMP_SCALED(cp) / (d->max_v_samp_factor * DCTSIZE);
	}
	out->ncomp = nc;
	// Stop here: the trailing markers carry nothing a preview needs.
	jpeg_abort_decompress(d);
	drop_src(d);
	return 0;
}
