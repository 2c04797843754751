// Ping-pong row buffer: a stream of rows in, the same words out in an order the parent chooses.
//
// Shared by the reordering cores (depth_to_space, upsample_nearest): each input row of ROW words
// is written in arrival order into one of two banks while the parent's read-address generator
// replays the other bank in output order, as often as it likes (upsampling reads each word
// FACTOR^2 times, depth-to-space once in another order). Steady state: one word per cycle on the
// output port; latency: one input row.
//
// Read protocol: rd_step is high in a cycle in which a word is read (the bank being read is full
// and the output register is free or being taken); the parent then advances rd_addr (offset within
// the bank, 0..ROW-1) to the next word and raises rd_bank_done together with the last read of a
// bank, which hands the bank back to the writer. rd_addr and rd_bank_done are sampled in rd_step
// cycles only.
//
// One write and one registered read port (block-RAM inferable); the registered read data is the
// output register itself, so m_axis_tdata/tvalid come straight from flops. Ports follow FINN:
// clock ap_clk, active-low synchronous reset ap_rst_n; AXI-Stream without tlast/tkeep.
`timescale 1ns / 1ps
`default_nettype none

module pingpong_row_buffer #(
    // Bits per word.
    parameter integer WIDTH = 8,
    // Words per row (= per bank); the buffer holds 2*ROW words.
    parameter integer ROW = 4,
    // Address width of rd_addr (at least $clog2(2*ROW)); the parent computes it the same way.
    parameter integer AW = (2 * ROW > 2) ? $clog2(2 * ROW) : 1
) (
    input  wire             ap_clk,
    input  wire             ap_rst_n,

    input  wire [WIDTH-1:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,

    output wire [WIDTH-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready,

    output wire             rd_step,
    input  wire [AW-1:0]    rd_addr,
    input  wire             rd_bank_done
);

    generate
        if (WIDTH < 1) begin : g_bad_width
            $fatal(1, "pingpong_row_buffer: WIDTH must be >= 1 (got %0d)", WIDTH);
        end
        if (ROW < 1) begin : g_bad_row
            $fatal(1, "pingpong_row_buffer: ROW must be >= 1 (got %0d)", ROW);
        end
        if (ROW >= 1 && 64'd2 * ROW > 64'd1073741824) begin : g_bad_size
            $fatal(1, "pingpong_row_buffer: 2*ROW words exceed 2^30");
        end
        if (ROW >= 1 && (64'd1 << AW) < 64'd2 * ROW) begin : g_bad_aw
            $fatal(1, "pingpong_row_buffer: AW (%0d) cannot address 2*ROW (%0d) words", AW, 2 * ROW);
        end
    endgenerate

    localparam integer DEPTH = 2 * ROW;
    localparam [AW-1:0] A_ROW      = AW'(ROW);
    localparam [AW-1:0] A_ROW_LAST = AW'(ROW - 1);

    // Bank 0 at [0, ROW), bank 1 at [ROW, 2*ROW).
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [1:0]       full;             // bank holds a complete row not yet handed back

    // ---------------------------------------------------------------- writer (arrival order)
    reg           wbank;
    reg [AW-1:0]  wcnt;
    wire          wr_fire = s_axis_tvalid && s_axis_tready;
    wire          wr_last = wr_fire && (wcnt == A_ROW_LAST);
    wire [AW-1:0] waddr   = (wbank ? A_ROW : {AW{1'b0}}) + wcnt;

    assign s_axis_tready = !full[wbank];

    always @(posedge ap_clk) begin
        if (wr_fire) mem[waddr] <= s_axis_tdata;
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            wbank <= 1'b0;
            wcnt  <= {AW{1'b0}};
        end else if (wr_fire) begin
            if (wr_last) begin
                wbank <= !wbank;
                wcnt  <= {AW{1'b0}};
            end else begin
                wcnt <= wcnt + 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- reader (parent's order)
    reg             rbank;
    reg [WIDTH-1:0] rdata;
    reg             out_valid;
    wire            rd_last = rd_step && rd_bank_done;
    wire [AW-1:0]   raddr   = (rbank ? A_ROW : {AW{1'b0}}) + rd_addr;

    assign rd_step       = full[rbank] && (!out_valid || m_axis_tready);
    assign m_axis_tdata  = rdata;
    assign m_axis_tvalid = out_valid;

    always @(posedge ap_clk) begin
        if (rd_step) rdata <= mem[raddr];
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            rbank     <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            if (rd_step) begin
                out_valid <= 1'b1;
            end else if (m_axis_tready) begin
                out_valid <= 1'b0;
            end
            if (rd_last) rbank <= !rbank;
        end
    end

    // ---------------------------------------------------------------- bank bookkeeping
    // The writer only sets the flag of a bank that is empty and the reader only clears the flag of
    // a full bank, so the two never touch the same bank in one cycle.
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            full <= 2'b00;
        end else begin
            if (wr_last) full[wbank] <= 1'b1;
            if (rd_last) full[rbank] <= 1'b0;
        end
    end

endmodule

`default_nettype wire
