// Streaming nearest-neighbour upsampling by an integer factor (NHWC), SIMD elements per beat.
//
// Input : an NHWC feature map of IMG_W pixels per row and CHANNELS channels, streamed in
//         row-major order (h, w, channel fold), SIMD channels per beat (lowest channel in the
//         lowest bits).
// Output: the map with FACTOR times the rows and columns, same channels, same beat format:
//         out[h*FACTOR + fh][w*FACTOR + fw][c] = in[h][w][c]   for fh, fw in [0, FACTOR).
//
// Architecture: a ping-pong row buffer (pingpong_row_buffer.sv) of 2 x IMG_W*CHANNELS/SIMD words;
// this core is its read-address generator. One bank fills while the other is replayed
// FACTOR*FACTOR times in output order. The output port moves
// one beat per cycle in steady state (the input then runs at 1/FACTOR^2 of a beat per cycle, as
// it must); latency is one input row. One write and one registered read port (block-RAM
// inferable, in the buffer); the read register is the output register.
//
// Ports follow FINN: clock ap_clk, active-low synchronous reset ap_rst_n; AXI-Stream without
// tlast/tkeep; data width SIMD*ELEM_BITS (FINN's wrapper pads it to whole bytes).
`timescale 1ns / 1ps
`default_nettype none

module upsample_nearest #(
    // Bits per element (the FINN datatype's bitwidth); the core only moves bits.
    parameter integer ELEM_BITS = 8,
    // Channels per beat; must divide CHANNELS.
    parameter integer SIMD = 1,
    // Input image width W in pixels (the output is FACTOR*W wide).
    parameter integer IMG_W = 4,
    // Channels C of input and output.
    parameter integer CHANNELS = 1,
    // Upsampling factor f per spatial axis, >= 1.
    parameter integer FACTOR = 2
) (
    input  wire                      ap_clk,
    input  wire                      ap_rst_n,

    input  wire [SIMD*ELEM_BITS-1:0] s_axis_tdata,
    input  wire                      s_axis_tvalid,
    output wire                      s_axis_tready,

    output wire [SIMD*ELEM_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);

    // Elaboration-time parameter checks.
    generate
        if (ELEM_BITS < 1) begin : g_bad_elem_bits
            $fatal(1, "upsample_nearest: ELEM_BITS must be >= 1 (got %0d)", ELEM_BITS);
        end
        if (SIMD < 1) begin : g_bad_simd
            $fatal(1, "upsample_nearest: SIMD must be >= 1 (got %0d)", SIMD);
        end
        if (IMG_W < 1) begin : g_bad_img_w
            $fatal(1, "upsample_nearest: IMG_W must be >= 1 (got %0d)", IMG_W);
        end
        if (CHANNELS < 1) begin : g_bad_channels
            $fatal(1, "upsample_nearest: CHANNELS must be >= 1 (got %0d)", CHANNELS);
        end
        if (SIMD >= 1 && CHANNELS % SIMD != 0) begin : g_bad_fold
            $fatal(1, "upsample_nearest: SIMD (%0d) must divide CHANNELS (%0d)", SIMD, CHANNELS);
        end
        if (FACTOR < 1) begin : g_bad_factor
            $fatal(1, "upsample_nearest: FACTOR must be >= 1 (got %0d)", FACTOR);
        end
    endgenerate

    localparam integer DW    = SIMD * ELEM_BITS;
    localparam integer FOLD  = (SIMD >= 1) ? CHANNELS / SIMD : 1;   // beats per pixel
    localparam integer ROW   = IMG_W * FOLD;                        // words in one input row
    localparam integer AW    = (2 * ROW > 2) ? $clog2(2 * ROW) : 1;
    localparam integer FW    = (FOLD > 1) ? $clog2(FOLD) : 1;
    localparam integer KW    = (FACTOR > 1) ? $clog2(FACTOR) : 1;
    localparam integer XW    = (IMG_W > 1) ? $clog2(IMG_W) : 1;

    localparam [AW-1:0] A_FOLD     = AW'(FOLD);
    localparam [FW-1:0] F_LAST     = FW'(FOLD - 1);
    localparam [KW-1:0] K_LAST     = KW'(FACTOR - 1);
    localparam [XW-1:0] X_LAST     = XW'(IMG_W - 1);

    wire rd_step;         // the buffer reads a word this cycle: advance the read address

    // ---------------------------------------------------------------- read addresses (output order)
    // Loop nest, innermost first: fold, fw, w, fh. Offset = w*FOLD + fold.
    reg [FW-1:0] fold;
    reg [KW-1:0] fw, fh;
    reg [XW-1:0] w;
    reg [AW-1:0] pix_base;

    wire fold_wrap = (fold == F_LAST);
    wire fw_wrap   = fold_wrap && (fw == K_LAST);
    wire w_wrap    = fw_wrap && (w == X_LAST);
    wire fh_wrap   = w_wrap && (fh == K_LAST);

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            fold     <= {FW{1'b0}};
            fw       <= {KW{1'b0}};
            fh       <= {KW{1'b0}};
            w        <= {XW{1'b0}};
            pix_base <= {AW{1'b0}};
        end else if (rd_step) begin
            if (!fold_wrap) begin
                fold <= fold + 1'b1;
            end else begin
                fold <= {FW{1'b0}};
                if (!fw_wrap) begin
                    fw <= fw + 1'b1;
                end else begin
                    fw <= {KW{1'b0}};
                    if (!w_wrap) begin
                        w        <= w + 1'b1;
                        pix_base <= pix_base + A_FOLD;
                    end else begin
                        w        <= {XW{1'b0}};
                        pix_base <= {AW{1'b0}};
                        if (!fh_wrap) begin
                            fh <= fh + 1'b1;
                        end else begin
                            fh <= {KW{1'b0}};
                        end
                    end
                end
            end
        end
    end

    // ---------------------------------------------------------------- the row buffer
    pingpong_row_buffer #(.WIDTH(DW), .ROW(ROW), .AW(AW)) rows (
        .ap_clk(ap_clk), .ap_rst_n(ap_rst_n),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .rd_step(rd_step), .rd_addr(pix_base + AW'(fold)), .rd_bank_done(fh_wrap)
    );

endmodule

`default_nettype wire
