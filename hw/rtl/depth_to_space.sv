// Streaming DepthToSpace (NHWC, CRD or DCR channel order), one element per beat.
//
// Input : an NHWC feature map of IMG_W pixels per row and CHANNELS*BLOCK*BLOCK channels, streamed
//         in row-major order (h, w, channel), one element per beat.
// Output: the NHWC map with BLOCK times the rows and columns and CHANNELS channels, streamed as
//         (oh, ow, c), one element per beat.
// Mapping (ONNX DepthToSpace on the equivalent NCHW tensor), by DCR:
//         0, mode "CRD": out[h*BLOCK + qh][w*BLOCK + qw][c] = in[h][w][c*BLOCK*BLOCK + qh*BLOCK + qw]
//         1, mode "DCR": out[h*BLOCK + qh][w*BLOCK + qw][c] = in[h][w][(qh*BLOCK + qw)*CHANNELS + c]
//         (DCR is what a channel concatenation of BLOCK*BLOCK per-phase streams delivers.)
//
// Architecture: a ping-pong row buffer (pingpong_row_buffer.sv) of 2 x ROW elements (ROW =
// IMG_W*CHANNELS*BLOCK*BLOCK, one input row, which is exactly the data of BLOCK output rows). This
// core is its read-address generator: the buffer fills one bank in input order while the other is
// read in output order, so the layer moves one element per cycle in steady state on both ports;
// the latency is one input row. Image height is not needed: rows simply follow each other (the
// image count is unbounded).
//
// Ports follow FINN: clock ap_clk, active-low synchronous reset ap_rst_n; AXI-Stream without
// tlast/tkeep. FINN pads stream widths to whole bytes in its wrapper; this core uses the exact
// element width.
`timescale 1ns / 1ps
`default_nettype none

module depth_to_space #(
    // Bits per element (the FINN datatype's bitwidth); the core only moves bits, sign is irrelevant.
    parameter integer ELEM_BITS = 8,
    // Input image width W in pixels (the output is BLOCK*W wide).
    parameter integer IMG_W = 4,
    // Output channels C (the input carries C*BLOCK*BLOCK channels).
    parameter integer CHANNELS = 1,
    // Block size b (spatial upscaling factor per axis), >= 1; 1 is an identity with one row of latency.
    parameter integer BLOCK = 2,
    // Channel order of the input: 0 = CRD (channel-major phases), 1 = DCR (phase-major blocks).
    parameter integer DCR = 0
) (
    input  wire                 ap_clk,
    input  wire                 ap_rst_n,

    input  wire [ELEM_BITS-1:0] s_axis_tdata,
    input  wire                 s_axis_tvalid,
    output wire                 s_axis_tready,

    output wire [ELEM_BITS-1:0] m_axis_tdata,
    output wire                 m_axis_tvalid,
    input  wire                 m_axis_tready
);

    // Elaboration-time parameter checks (each fails with a readable message).
    generate
        if (ELEM_BITS < 1) begin : g_bad_elem_bits
            $fatal(1, "depth_to_space: ELEM_BITS must be >= 1 (got %0d)", ELEM_BITS);
        end
        if (IMG_W < 1) begin : g_bad_img_w
            $fatal(1, "depth_to_space: IMG_W must be >= 1 (got %0d)", IMG_W);
        end
        if (CHANNELS < 1) begin : g_bad_channels
            $fatal(1, "depth_to_space: CHANNELS must be >= 1 (got %0d)", CHANNELS);
        end
        if (BLOCK < 1) begin : g_bad_block
            $fatal(1, "depth_to_space: BLOCK must be >= 1 (got %0d)", BLOCK);
        end
        if (DCR != 0 && DCR != 1) begin : g_bad_dcr
            $fatal(1, "depth_to_space: DCR must be 0 (CRD order) or 1 (DCR order) (got %0d)", DCR);
        end
        if (BLOCK >= 1 && CHANNELS >= 1 && IMG_W >= 1
                && 64'd2 * IMG_W * CHANNELS * BLOCK * BLOCK > 64'd1073741824) begin : g_bad_size
            $fatal(1, "depth_to_space: row buffer of 2*IMG_W*CHANNELS*BLOCK^2 elements exceeds 2^30");
        end
    endgenerate

    localparam integer BB    = BLOCK * BLOCK;
    localparam integer ROW   = IMG_W * CHANNELS * BB;       // elements in one input row (= one bank)
    localparam integer AW    = (2 * ROW > 2) ? $clog2(2 * ROW) : 1;
    localparam integer CW    = (CHANNELS > 1) ? $clog2(CHANNELS) : 1;
    localparam integer BW    = (BLOCK > 1) ? $clog2(BLOCK) : 1;
    localparam integer XW    = (IMG_W > 1) ? $clog2(IMG_W) : 1;

    // Sized constants (address arithmetic stays AW bits wide).
    localparam [AW-1:0] A_PIX      = AW'(CHANNELS * BB);     // elements per input pixel
    // Address steps of the reader's c, qw and qh counters within one input pixel.
    localparam [AW-1:0] A_C_STEP   = AW'((DCR != 0) ? 1 : BB);
    localparam [AW-1:0] A_QW_STEP  = AW'((DCR != 0) ? CHANNELS : 1);
    localparam [AW-1:0] A_QH_STEP  = AW'((DCR != 0) ? BLOCK * CHANNELS : BLOCK);
    localparam [CW-1:0] C_LAST     = CW'(CHANNELS - 1);
    localparam [BW-1:0] B_LAST     = BW'(BLOCK - 1);
    localparam [XW-1:0] X_LAST     = XW'(IMG_W - 1);

    wire rd_step;         // the buffer reads a word this cycle: advance the read address

    // ---------------------------------------------------------------- read addresses (output order)
    // Loop nest, innermost first: c (output channel), qw, w, qh.
    // Offset = w*C*BB (pix_base) + c_off + qh_off + qw_off, the offsets stepping by A_C_STEP,
    // A_QH_STEP and A_QW_STEP (CRD: c*BB + qh*BLOCK + qw; DCR: (qh*BLOCK + qw)*C + c).
    reg [CW-1:0] c;
    reg [BW-1:0] qw, qh;
    reg [XW-1:0] w;
    reg [AW-1:0] pix_base, c_off, qh_off, qw_off;

    wire c_wrap  = (c  == C_LAST);
    wire qw_wrap = c_wrap && (qw == B_LAST);
    wire w_wrap  = qw_wrap && (w == X_LAST);
    wire qh_wrap = w_wrap && (qh == B_LAST);

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            c        <= {CW{1'b0}};
            qw       <= {BW{1'b0}};
            qh       <= {BW{1'b0}};
            w        <= {XW{1'b0}};
            pix_base <= {AW{1'b0}};
            c_off    <= {AW{1'b0}};
            qh_off   <= {AW{1'b0}};
            qw_off   <= {AW{1'b0}};
        end else if (rd_step) begin
            if (!c_wrap) begin
                c     <= c + 1'b1;
                c_off <= c_off + A_C_STEP;
            end else begin
                c     <= {CW{1'b0}};
                c_off <= {AW{1'b0}};
                if (!qw_wrap) begin
                    qw     <= qw + 1'b1;
                    qw_off <= qw_off + A_QW_STEP;
                end else begin
                    qw     <= {BW{1'b0}};
                    qw_off <= {AW{1'b0}};
                    if (!w_wrap) begin
                        w        <= w + 1'b1;
                        pix_base <= pix_base + A_PIX;
                    end else begin
                        w        <= {XW{1'b0}};
                        pix_base <= {AW{1'b0}};
                        if (!qh_wrap) begin
                            qh     <= qh + 1'b1;
                            qh_off <= qh_off + A_QH_STEP;
                        end else begin
                            qh     <= {BW{1'b0}};
                            qh_off <= {AW{1'b0}};
                        end
                    end
                end
            end
        end
    end

    // ---------------------------------------------------------------- the row buffer
    pingpong_row_buffer #(.WIDTH(ELEM_BITS), .ROW(ROW), .AW(AW)) rows (
        .ap_clk(ap_clk), .ap_rst_n(ap_rst_n),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .rd_step(rd_step), .rd_addr(pix_base + c_off + qh_off + qw_off), .rd_bank_done(qh_wrap)
    );

endmodule

`default_nettype wire
