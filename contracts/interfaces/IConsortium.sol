// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Consortium membership of the ledgercrm coalition.
/// @notice Partners admit and remove members by a strict majority of the current partners.
interface IConsortium {
    /// @dev Kinds of proposal. The numeric values are part of the external interface.
    enum Action {
        AdmitPartner,
        AdmitAuditor,
        RemoveMember
    }

    /// @dev A member's role. `None` is every address that is not (or no longer) a member.
    enum Role {
        None,
        Partner,
        Auditor
    }

    error ConsortiumNoFounders();
    error ConsortiumZeroAddress();
    error ConsortiumDuplicateFounder(address account);
    error ConsortiumNotPartner(address account);
    error ConsortiumInvalidAction(uint8 action);
    error ConsortiumAlreadyMember(address account, Role role);
    error ConsortiumNotMember(address account);
    error ConsortiumLastPartner(address account);
    error ConsortiumUnknownProposal(uint256 proposalId);
    error ConsortiumProposalClosed(uint256 proposalId);
    error ConsortiumAlreadyVoted(uint256 proposalId, address voter);
    error ConsortiumQuorumNotReached(uint256 proposalId, uint256 votes, uint256 needed);
    error ConsortiumProposalExpired(uint256 proposalId, uint64 expiresAt);
    /// @dev `recordContracts` called by another account than the one that deployed this Consortium.
    error ConsortiumNotDeployer(address account);
    /// @dev `recordContracts` called again: the coalition's contracts are recorded once, at deployment.
    error ConsortiumContractsAlreadyRecorded();
    /// @dev A contract to record that is not wired to this Consortium (no code, or another consortium).
    error ConsortiumForeignContract(address account);

    event ProposalCreated(uint256 indexed proposalId, address indexed proposer, Action action, address indexed account);
    event ProposalVoted(uint256 indexed proposalId, address indexed voter, uint256 votes, uint256 partners);
    event ProposalExecuted(uint256 indexed proposalId);
    event MemberAdmitted(address indexed account, Role role);
    event MemberRemoved(address indexed account);
    event ContractsRecorded(
        address memberRegistry,
        address consentRegistry,
        address loyaltyPoints,
        address interactionAnchor,
        address decisionLog
    );

    /// @dev The coalition's other contracts, as the deployer recorded them once, at deployment.
    struct Contracts {
        address memberRegistry;
        address consentRegistry;
        address loyaltyPoints;
        address interactionAnchor;
        address decisionLog;
    }

    function isPartner(address account) external view returns (bool);

    function isAuditor(address account) external view returns (bool);

    function partners() external view returns (address[] memory);

    /// @notice The coalition's other contracts (all zero until the deployer recorded them): the one
    /// place their addresses are read from, so this contract's address is the coalition's trust anchor.
    function coalitionContracts() external view returns (Contracts memory);

    /// @notice How many tenures `account` began as a partner (the current one's number while it is a
    /// partner; 0 if it never was): a vote cast in one tenure is told from one cast in the next.
    function tenureOf(address account) external view returns (uint256);

    /// @notice Whether `account` was a partner from block `fromBlock` through block `atBlock` without a
    /// break (one tenure: admitted at or before `fromBlock`, not removed by `atBlock`).
    function servedThrough(address account, uint64 fromBlock, uint64 atBlock) external view returns (bool);

    /// @notice `servedThrough` by unix time: one tenure covers `fromTime` and had not ended by `atTime`.
    function servedThroughTime(address account, uint64 fromTime, uint64 atTime) external view returns (bool);
}
