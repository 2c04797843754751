// add_multi: pipelined sum of N addends -- fpga_gan's simulation model of finn-rtllib's module.
//
// Why it exists: finn-rtllib's add_multi builds its adder tree with a constant function declared
// inside a generate block, which IEEE 1800 forbids and Verilator (5.049) rejects, so FINN's RTL
// MVU cannot be elaborated by Verilator when it packs several PEs into one DSP. This module has
// the same name, parameters and ports and the same cycle behaviour, written differently: the sum
// is formed combinationally and delayed by the pipeline registers.
//
// Cycle behaviour (as the original): the first min(DEPTH, clog2(N)) stages advance only while
// `en` is high (they stand for the registers inside the tree), any further stages up to DEPTH
// advance every cycle. The result is the sum of the addends sampled DEPTH stages earlier.
// Only the simulation file list uses it (fpga_gan.sim); synthesis uses FINN's own file.

module add_multi import mvu_pkg::*; #(
	int unsigned  N,            // number of addends
	int unsigned  DEPTH,        // pipeline depth in cycles
	int unsigned  ARG_WIDTH,    // width of each addend
	int  ARG_LO = 0,            // smallest addend value (negative: addends are signed)
	int  ARG_HI = 0,            // largest addend value (0 with ARG_LO 0: the full ARG_WIDTH range)
	bit  RESET_ZERO = 1,        // reset registers to 0 (else to X; 0 in two-state simulation)

	localparam int unsigned  SUM_WIDTH = sumwidth(N, ARG_WIDTH, longint'(ARG_LO), longint'(ARG_HI))
)(
	input	logic  clk,
	input	logic  rst,
	input	logic  en,

	input	logic [ARG_WIDTH-1:0]  arg[N],
	output	logic [SUM_WIDTH-1:0]  sum
);

	localparam int unsigned  LEVELS = $clog2(N);
	localparam int unsigned  GATED = DEPTH < LEVELS? DEPTH : LEVELS;   // registers inside the tree
	localparam int unsigned  FREE = DEPTH > LEVELS? DEPTH - LEVELS : 0; // plain delay after it
	localparam bit  SIGNED = ARG_LO < 0;

	// combinational sum, sign- or zero-extended addends
	logic [SUM_WIDTH-1:0]  total;
	always_comb begin
		total = '0;
		for(int unsigned  i = 0; i < N; i++) begin
			if(SIGNED)  total += SUM_WIDTH'($signed(arg[i]));
			else        total += SUM_WIDTH'(arg[i]);
		end
	end

	// stages 0 .. GATED-1 advance with `en`, then FREE stages every cycle
	logic [SUM_WIDTH-1:0]  stage[GATED + FREE + 1];
	assign	stage[0] = total;
	for(genvar  k = 0; k < GATED + FREE; k++) begin : genStage
		logic [SUM_WIDTH-1:0]  R;
		always_ff @(posedge clk) begin
			if(rst)                  R <= RESET_ZERO? '0 : 'x;
			else if(k >= GATED || en)  R <= stage[k];
		end
		assign	stage[k+1] = R;
	end : genStage
	assign	sum = stage[GATED + FREE];

endmodule : add_multi
